// Which fds the CLI process inherited from its caller: the only ones `--preserve-fds N` and LISTEN_FDS may
// pass to a container. fds 3..3+N-1 of a Node process also hold Node's own (its libuv loops' epoll fds,
// eventfds and signal pipes), and handing one of those to a container gives it, say, the write end of a
// root process's signal pipe.
//
// Why this test is sound: Node opens its own fds during start-up, before any JavaScript runs, and (Node
// 20/22, checked with strace) only three kinds: epoll instances, eventfds (libuv's async handles) and pipes
// created with pipe2() whose two ends it keeps (libuv's signal pipes and its signal lock pipe). Node also
// marks every inherited fd close-on-exec at start-up, so the flag cannot tell them apart, and their numbers
// interleave (Node fills the lowest free numbers). So the list is taken as the CLI starts, before it opens
// anything itself, and an fd counts as inherited unless it is an epoll, eventfd or io_uring instance, or
// one end of a pipe whose other end this process also holds. The cost of erring: such an fd (an inherited
// eventfd, or both ends of one pipe) is not passed; never the other way round.
import * as fs from 'fs';
import { HakoError } from '../errors';

/** As the library's limit (lib/runtime/enter.ts), kept here so the CLI need not load the runtime for it. */
const MAX_PASS_FDS = 1024;

let inherited: Set<number> | undefined;

const NODE_OWN = /^anon_inode:\[?(eventpoll|eventfd|io_uring)\]?$/;

/** Take the list; call first thing in the CLI's entry. Later calls keep the first list. */
export function recordInheritedFds(): void {
  if (inherited) return;
  const seen: { fd: number; target: string; write: boolean }[] = [];
  let names: string[];
  try {
    names = fs.readdirSync('/proc/self/fd');
  } catch {
    inherited = new Set();
    return;
  }
  for (const name of names) {
    const fd = Number(name);
    if (fd < 3) continue;
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      const flags = /^flags:\s*([0-7]+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
      seen.push({ fd, target, write: !!flags && (parseInt(flags[1], 8) & 3) !== 0 });
    } catch {
      // readdir's own fd, closed by now
    }
  }
  const pipeEnds = new Map<string, Set<boolean>>();
  for (const s of seen)
    if (s.target.startsWith('pipe:')) pipeEnds.set(s.target, (pipeEnds.get(s.target) ?? new Set()).add(s.write));
  inherited = new Set(
    seen
      .filter((s) => !NODE_OWN.test(s.target) && !(s.target.startsWith('pipe:') && pipeEnds.get(s.target)!.size === 2))
      .map((s) => s.fd),
  );
}

/** runc's --preserve-fds N: fds 3..3+N-1, each at its own number; a number the CLI did not inherit stays empty (null). */
export function preservedFds(n: number): (number | null)[] {
  recordInheritedFds();
  return Array.from({ length: n }, (_, i) => (inherited!.has(3 + i) ? 3 + i : null));
}

/**
 * --preserve-fds N and, for create and run, socket activation (LISTEN_FDS in the environment, as runc): the
 * fds passed are 3..3+max(N, LISTEN_FDS)-1 among those this process inherited, each at its own number.
 */
export function preserveArgs(
  n: number | undefined,
  socketActivation = true,
): { passFds: (number | null)[]; listenFds?: number } {
  const count = n ?? 0;
  if (!Number.isInteger(count) || count < 0 || count > MAX_PASS_FDS)
    throw new HakoError(`--preserve-fds: invalid value ${n}`, { field: '--preserve-fds' });
  const listen = socketActivation ? Number(process.env.LISTEN_FDS ?? 0) : 0;
  if (Number.isInteger(listen) && listen > 0 && listen <= MAX_PASS_FDS)
    return { passFds: preservedFds(Math.max(count, listen)), listenFds: listen };
  return { passFds: preservedFds(count) };
}
