// The state root: one directory per container holding state.json (written atomically: temp + rename),
// a lock file (flock) that serialises operations on the container, and the init's control socket.
import * as fs from 'fs';
import * as path from 'path';
import { HakoError } from '../errors';
import { holdFd, releaseFd } from './held-fds';
import { addon } from '../native/addon';
import type { Spec, State } from '../oci/types';

export const DEFAULT_ROOT = '/run/hako';
const ID_PATTERN = /^[\w+\-.]+$/;

/** What hako records about a container, beyond the OCI state. */
export interface StoredState extends State {
  /** Start time of the init (field 22 of /proc/PID/stat): tells a reused pid from the container. */
  pidStartTime?: string;
  /** dev:ino of the init helper binary: while /proc/PID/exe is still it, the container waits for start. */
  helperId?: string;
  /** Status last recorded by hako; the live process decides whether it still holds. */
  recorded: 'creating' | 'created' | 'running';
  config: Spec;
  cgroupPath?: string;
  /** Directories create() made, so delete removes exactly those. */
  cgroupCreated?: string[];
  /** Controller -> directory as resolved at create ('' is the cgroup2 one). */
  cgroupDirs?: Record<string, string>;
  rootless?: boolean;
  /** Frozen by `pause`. */
  paused?: boolean;
}

const CACHE_DIR = '.cache';

export function validateId(id: string): void {
  if (typeof id !== 'string' || !ID_PATTERN.test(id) || id === '.' || id === '..' || id === CACHE_DIR || id.length > 1024)
    throw new HakoError(`invalid id format: ${id}`, { field: 'container id', code: 'EINVAL_ID' });
}

export class StateStore {
  constructor(readonly root: string = DEFAULT_ROOT) {}

  /** Derived data shared by all containers (compiled seccomp programs); on the same tmpfs as the state. */
  cacheDir(): string {
    return path.join(this.root, CACHE_DIR);
  }

  dir(id: string): string {
    validateId(id);
    return path.join(this.root, id);
  }

  controlSocket(id: string): string {
    return path.join(this.dir(id), 'ctl.sock');
  }

  /** Create the container's directory; the mkdir itself is what makes a duplicate id fail. */
  reserve(id: string): string {
    fs.mkdirSync(this.root, { recursive: true, mode: 0o711 });
    const dir = this.dir(id);
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST')
        throw new HakoError(`container with id exists: ${id}`, { field: 'container id', code: 'EEXIST' });
      throw e;
    }
    return dir;
  }

  exists(id: string): boolean {
    return fs.existsSync(path.join(this.dir(id), 'state.json'));
  }

  load(id: string): StoredState {
    const file = path.join(this.dir(id), 'state.json');
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new HakoError(`container "${id}" does not exist`, { code: 'ENOENT' });
      throw e;
    }
    return JSON.parse(text) as StoredState;
  }

  save(s: StoredState): void {
    writeAtomic(path.join(this.dir(s.id), 'state.json'), JSON.stringify(s));
  }

  remove(id: string): void {
    const dir = this.dir(id);
    // The directory holds a few plain files (state.json, lock, ctl.sock, ...): unlink them directly;
    // fs.rmSync's recursive walk costs ~1 ms of a cold CLI run. Anything unexpected falls back to it.
    try {
      for (const name of fs.readdirSync(dir)) fs.unlinkSync(path.join(dir, name));
      fs.rmdirSync(dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  ids(): string[] {
    try {
      return fs
        .readdirSync(this.root, { withFileTypes: true })
        .filter((d) => d.isDirectory() && ID_PATTERN.test(d.name) && d.name !== CACHE_DIR)
        .map((d) => d.name)
        .sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  /**
   * Run `fn` holding the container's lock. The lock file lives in the container directory, so a
   * deleted container's lock disappears with it.
   */
  async withLock<T>(id: string, fn: () => Promise<T> | T): Promise<T> {
    const lockPath = path.join(this.dir(id), 'lock');
    let fd: number;
    try {
      fd = fs.openSync(lockPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new HakoError(`container "${id}" does not exist`, { code: 'ENOENT' });
      throw e;
    }
    holdFd(fd);
    try {
      for (let wait = 1; !addon().flock(fd, true, true); wait = Math.min(wait * 2, 50))
        await new Promise((r) => setTimeout(r, wait));
      return await fn();
    } finally {
      releaseFd(fd);
      fs.closeSync(fd);
    }
  }

}

/** Write a file so that readers see the old or the new content, never a torn one. */
export function writeAtomic(file: string, content: string | Buffer, mode = 0o600): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content, { mode });
  fs.renameSync(tmp, file);
}
