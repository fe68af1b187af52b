// Who may call the shim: a peer with this process's own uid and gid, as containerd's shims require of theirs
// (ttrpc's UnixSocketRequireSameUser; reference/containerd-shim-v2.md §3). The socket is already 0600 in a 0711
// directory; this check holds even if its mode is changed, or an fd of it is passed to another user.
import type * as net from 'net';
import { addon } from '../native/addon';

/** The connection's peer, or why it is refused (the shim closes it unanswered). */
export function refusePeer(conn: net.Socket): string | null {
  // A net.Socket accepted by net.Server on a unix socket: its libuv pipe handle holds the fd (Node exposes it as
  // `_handle.fd` on Unix). Without an fd nothing can be checked, and nothing is served.
  const fd = (conn as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return 'the connection has no fd to check its peer';
  let peer: { pid: number; uid: number; gid: number };
  try {
    peer = addon().peerCredentials(fd);
  } catch (e) {
    return (e as Error).message;
  }
  const uid = process.geteuid?.() ?? -1;
  const gid = process.getegid?.() ?? -1;
  if (peer.uid !== uid || peer.gid !== gid)
    return `peer pid ${peer.pid} (uid ${peer.uid}, gid ${peer.gid}) is not the shim's user (uid ${uid}, gid ${gid})`;
  return null;
}
