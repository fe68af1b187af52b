// What the CLI prints: the one-shot verbs' output and the help texts. process.stdout/stderr are created on first
// use and, for files and pipes, load Node's stream stack (~1.8 ms of a `hako state`); a write(2) on the fd does
// the same job.
import * as fs from 'fs';
import { HAKO_VERSION } from '../version';
import { GLOBAL_FLAGS, HELP_FLAG, VERBS, type FlagSpec } from './args';

function writeFd(fd: 1 | 2, text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off);
    } catch (e) {
      // A non-blocking fd (a caller's pipe set O_NONBLOCK) is full: let the stream queue the rest.
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') {
        (fd === 1 ? process.stdout : process.stderr).write(buf.subarray(off));
        return;
      }
      // EPIPE, EBADF: nobody is reading; there is no one left to tell.
      return;
    }
  }
}

export const writeStdout = (text: string): void => writeFd(1, text);
export const writeStderr = (text: string): void => writeFd(2, text);

/** The flag lines of a help text, runc style: `--bundle DIR, -b DIR  usage`. */
function flagLines(flags: FlagSpec[]): string[] {
  const heads = flags.map((f) => {
    const v = f.type === 'boolean' ? '' : ` ${f.value ?? 'value'}`;
    return `--${f.name}${v}${f.alias ? `, -${f.alias}${v}` : ''}`;
  });
  const width = Math.max(...heads.map((h) => h.length));
  return flags.map((f, i) => `   ${heads[i].padEnd(width)}  ${f.usage ?? ''}`.trimEnd());
}

/** `hako help VERB`, `hako VERB --help`. */
export function verbHelp(verb: string): string {
  const v = VERBS[verb];
  const out = [
    'NAME:',
    `   hako ${verb} - ${v.summary}`,
    '',
    'USAGE:',
    `   hako [global options] ${verb}${v.args ? ` ${v.args}` : ''}`,
  ];
  if (v.description) out.push('', 'DESCRIPTION:', ...v.description.split('\n').map((l) => `   ${l}`));
  out.push('', 'OPTIONS:', ...flagLines([...v.flags, HELP_FLAG]));
  return out.join('\n') + '\n';
}

/** `hako --help`, `hako help`. */
export function globalHelp(): string {
  const names = Object.keys(VERBS);
  const width = Math.max(...names.map((n) => n.length));
  return (
    [
      'NAME:',
      `   hako - a lightweight OCI container runtime (version ${HAKO_VERSION})`,
      '',
      'USAGE:',
      '   hako [global options] command [command options] [arguments...]',
      '',
      'COMMANDS:',
      ...names.map((n) => `   ${n.padEnd(width)}  ${VERBS[n].summary}`),
      `   ${'help'.padEnd(width)}  show the help of a command (hako help COMMAND, or hako COMMAND --help)`,
      '',
      'GLOBAL OPTIONS:',
      ...flagLines(GLOBAL_FLAGS),
    ].join('\n') + '\n'
  );
}
