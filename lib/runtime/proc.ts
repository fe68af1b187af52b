// What /proc says about a pid: alive or not, the same process or a reused pid, still the init helper.
import * as fs from 'fs';

export interface ProcStat {
  state: string;
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
  return { state: rest[0], startTime: rest[19] };
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
