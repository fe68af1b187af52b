// --pidfd-socket (runc 1.2): a pidfd of the container's process, passed with SCM_RIGHTS in one message on a
// stream connection to the AF_UNIX socket at the given path. The message's bytes say which process it is, as
// runc's init sends them: "standard" for the init of create/run, "setns" for a process of exec. The receiver
// (containerd's shim, for one) can then signal and wait on the process without racing pid reuse.
import * as path from 'path';
import { HakoError } from '../errors';
import { addon } from '../native/addon';

export function sendPidfd(socketPath: string, pidfd: number, kind: 'standard' | 'setns'): void {
  try {
    addon().sendToPath(path.resolve(socketPath), Buffer.from(kind), [pidfd]);
  } catch (e) {
    throw new HakoError(`pidfdSocket: send the container's pidfd to ${socketPath}: ${(e as Error).message}`, {
      field: 'pidfdSocket',
    });
  }
}
