// The caller's credentials are read from /proc/<tid>/status, which costs ~10 µs: most of what a denied call
// cost on the server's native thread (HAKO_NOTIFY_TRACE breakdown). Only an allowed call needs them (the
// caller check before emulating), so `n.creds` becomes a getter that reads them on first access, through the
// /proc/<tid> fd the native thread opened and validated with NOTIF_ID_VALID at receipt (the same guarantee as
// reading them there: they are the caller's, even if its pid is reused later). Read before the call is
// answered (any decision is); after that the getter gives undefined.
import { addon, type NotifyEventNotif } from '../native/addon';

export function attachLazyCreds(sid: number, n: NotifyEventNotif): void {
  if (!n.prepared || n.creds) return;
  let value: NotifyEventNotif['creds'] | null = null; // null: not read yet
  Object.defineProperty(n, 'creds', {
    configurable: true,
    enumerable: true,
    get() {
      if (value === null) value = addon().notifyCreds(sid, n.listener, n.token) ?? undefined;
      return value;
    },
  });
}
