// What /proc says about a pid: alive or not, the same process or a reused pid, still the init helper.
import * as fs from 'fs';

export interface ProcStat {
  state: string;
  /** The kernel's PF_* flags of the task (field 9). */
  flags: number;
  startTime: string;
}

export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: fields start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0], flags: Number(rest[6]), startTime: rest[19] };
}

/** The process is the one we started (same start time) and has not exited (not a zombie). */
export function isAlive(pid: number | undefined, startTime: string | undefined): boolean {
  if (!pid) return false;
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return startTime === undefined || st.startTime === startTime;
}

export function fileId(file: string): string | undefined {
  try {
    const st = fs.statSync(file);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

export function exeId(pid: number): string | undefined {
  return fileId(`/proc/${pid}/exe`);
}

const NS_FILES: [string, number][] = [
  ['user', 0x10000000],
  ['mnt', 0x20000],
  ['pid', 0x20000000],
  ['net', 0x40000000],
  ['ipc', 0x08000000],
  ['uts', 0x04000000],
  ['cgroup', 0x02000000],
  ['time', 0x80],
];

/** The namespaces of `pid` that differ from ours: the ones an exec must enter. */
export function namespacesToJoin(pid: number): number {
  let flags = 0;
  for (const [name, flag] of NS_FILES) {
    try {
      if (fs.statSync(`/proc/${pid}/ns/${name}`).ino !== fs.statSync(`/proc/self/ns/${name}`).ino) flags |= flag;
    } catch {
      /* namespace type not supported by this kernel */
    }
  }
  return flags;
}

/** The pids of the processes whose command line (argv) `match` accepts; a process that ends meanwhile is left out. */
export function pidsByArgv(match: (argv: string[]) => boolean): number[] {
  const pids: number[] = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (match(fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0'))) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return pids;
}
