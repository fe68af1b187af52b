// fds this process keeps open beyond one call: state locks, container pidfds, held namespaces. A container
// spawned with --preserve-fds N must never inherit one that falls inside 3..3+N-1 (a lock held for its
// lifetime, a pidfd that can signal another container, a namespace of another container).
const held = new Set<number>();

export function holdFd(fd: number): number {
  held.add(fd);
  return fd;
}

export function releaseFd(fd: number): void {
  held.delete(fd);
}

export function heldFds(): number[] {
  return [...held];
}
