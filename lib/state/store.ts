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
  /** Who wrote the state: a state root may be shared with runc or crun (Docker passes one --root to all). */
  runtime?: 'hako';
}

/**
 * What create is about to make, written before it makes anything outside the state directory (the cgroups),
 * so that `delete --force` after a runtime killed mid-create finds and removes them.
 */
export interface CreateIntent {
  runtime: 'hako';
  id: string;
  cgroupPath: string;
  cgroupDirs: Record<string, string>;
  /** Directories on the way that did not exist yet: destroy removes them if they are empty. */
  cgroupCreated: string[];
}

/** A state root entry that hako did not write (a runc or crun container sharing the root). */
export function foreignError(id: string): HakoError {
  return new HakoError(`container "${id}" was not created by hako (its state directory belongs to another runtime)`, {
    field: 'container id',
    code: 'EFOREIGN',
  });
}

/** Files hako keeps in a container's directory (state.json and writeAtomic's temporaries included). */
const HAKO_FILES = /^(state\.json|intent\.json|lock|ctl\.sock)(\.\d+\.tmp)?$/;

/** save() writes the marker first, so a state file is told to be hako's without parsing it. */
const MARKER = '{"runtime":"hako"';

/** Whether the text of a state.json is hako's (a torn or unparsable file is not evidence either way: false). */
function isHakoStateText(text: string): boolean {
  if (text.startsWith(MARKER)) return true;
  try {
    return isHakoState(JSON.parse(text));
  } catch {
    return false;
  }
}

/** hako's state, or one an older hako wrote (no `runtime` field then, but `recorded` and the OCI fields). */
function isHakoState(v: unknown): v is StoredState {
  if (typeof v !== 'object' || v === null) return false;
  const s = v as Record<string, unknown>;
  if (s.runtime !== undefined) return s.runtime === 'hako';
  return (
    typeof s.recorded === 'string' &&
    typeof s.ociVersion === 'string' &&
    typeof s.config === 'object' &&
    s.config !== null
  );
}

/** Where hako kept its caches before they moved out of the state root: still refused as an id, removed at create. */
const CACHE_DIR = '.cache';
/** The names of hako's own cache files, so only a cache hako wrote is removed from a state root. */
const LEGACY_CACHE_FILE = /^(cli-.*\.v8|seccomp-[0-9a-f]{8}\.bpf)(\.\d+(\.tmp)?)?$/;

export function validateId(id: string): void {
  if (
    typeof id !== 'string' ||
    !ID_PATTERN.test(id) ||
    id === '.' ||
    id === '..' ||
    id === CACHE_DIR ||
    id.length > 1024
  )
    throw new HakoError(`invalid id format: ${id}`, { field: 'container id', code: 'EINVAL_ID' });
}

export class StateStore {
  constructor(readonly root: string = DEFAULT_ROOT) {}

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
    this.removeLegacyCache();
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

  /**
   * An older hako kept its caches in <root>/.cache, which runc then lists as a broken container ("load
   * container .cache: container does not exist"). Remove it, but only when it holds nothing but hako's files.
   */
  private removeLegacyCache(): void {
    const dir = path.join(this.root, CACHE_DIR);
    let names: string[];
    try {
      if (!fs.lstatSync(dir).isDirectory()) return;
      names = fs.readdirSync(dir);
    } catch {
      return; // the usual case: none
    }
    if (!names.every((n) => LEGACY_CACHE_FILE.test(n))) return;
    try {
      for (const n of names) fs.rmSync(path.join(dir, n), { force: true });
      fs.rmdirSync(dir);
    } catch {
      /* another hako is writing it right now: the next create tries again */
    }
  }

  /** A hako container with its state written (not one being created, nor another runtime's). */
  exists(id: string): boolean {
    try {
      return isHakoStateText(fs.readFileSync(path.join(this.dir(id), 'state.json'), 'utf8'));
    } catch {
      return false;
    }
  }

  /**
   * Whether the entry `id` of the state root is another runtime's: its state.json is not hako's, or its
   * directory holds files hako never writes (crun keeps `status` and `config.json`). An empty directory or
   * one with only hako's files is hako's (a container being created, or one whose create was killed).
   */
  isForeign(id: string): boolean {
    const dir = this.dir(id);
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      return false;
    }
    if (!names.every((n) => HAKO_FILES.test(n))) return true;
    if (!names.includes('state.json')) return false;
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, 'state.json'), 'utf8');
    } catch {
      return false; // gone meanwhile: not evidence of another runtime
    }
    if (text.startsWith(MARKER)) return false;
    try {
      return !isHakoState(JSON.parse(text));
    } catch {
      return false; // torn: not evidence of another runtime
    }
  }

  load(id: string): StoredState {
    const file = path.join(this.dir(id), 'state.json');
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        if (this.isForeign(id)) throw foreignError(id);
        throw new HakoError(`container "${id}" does not exist`, { code: 'ENOENT' });
      }
      throw e;
    }
    const s: unknown = JSON.parse(text);
    if (!isHakoState(s)) throw foreignError(id);
    return s;
  }

  save(s: StoredState): void {
    // The marker goes first (MARKER): a spread keeps the position of a key `s` already has, so set it up front.
    writeAtomic(path.join(this.dir(s.id), 'state.json'), JSON.stringify({ runtime: 'hako', ...s }));
  }

  /** Record what create is about to make (see CreateIntent); state.json, once written, supersedes it. */
  saveIntent(intent: Omit<CreateIntent, 'runtime'>): void {
    writeAtomic(path.join(this.dir(intent.id), 'intent.json'), JSON.stringify({ ...intent, runtime: 'hako' }));
  }

  /** The intent of a create that never wrote state.json (killed, or still running), if any. */
  loadIntent(id: string): CreateIntent | undefined {
    try {
      const v = JSON.parse(fs.readFileSync(path.join(this.dir(id), 'intent.json'), 'utf8')) as CreateIntent;
      return v && v.runtime === 'hako' && v.id === id ? v : undefined;
    } catch {
      return undefined;
    }
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
      // Every hako container has its lock from create on; without one, look before creating a file in what
      // may be another runtime's directory.
      fd = fs.openSync(lockPath, fs.constants.O_RDWR);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      if (this.isForeign(id)) throw foreignError(id);
      try {
        fd = fs.openSync(lockPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
      } catch (e2) {
        if ((e2 as NodeJS.ErrnoException).code === 'ENOENT')
          throw new HakoError(`container "${id}" does not exist`, { code: 'ENOENT' });
        throw e2;
      }
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

/** A pid file that cannot be written, said as runc says it rather than as Node's fs does. */
export function pidFileError(file: string, e: unknown): HakoError {
  const code = (e as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOENT'
      ? 'no such file or directory'
      : code === 'EACCES'
        ? 'permission denied'
        : code === 'ENOTDIR'
          ? 'not a directory'
          : (e as Error).message;
  return new HakoError(`--pid-file: cannot write ${path.resolve(file)}: ${why}`, { field: '--pid-file', code });
}
