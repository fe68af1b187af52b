// `list`: the containers of the state root, as runc prints them (table, JSON, or ids only).
import * as fs from 'fs';
import { HakoError } from '../../errors';
import { parseVerb, str } from '../args';
import type { CliContext } from '../context';
import { writeStdout } from '../output';

/** uid → user name from the host's /etc/passwd (empty when it cannot be read). */
function userNames(): Map<string, string> {
  const names = new Map<string, string>();
  let text = '';
  try {
    text = fs.readFileSync('/etc/passwd', 'utf8');
  } catch {}
  for (const line of text.split('\n')) {
    const [name, , uid] = line.split(':');
    if (name && uid && /^\d+$/.test(uid) && !names.has(uid)) names.set(uid, name);
  }
  return names;
}

export async function list(cli: CliContext, argv: string[]): Promise<number> {
  const p = parseVerb('list', argv);
  // runc lists the owner by user name (root), or "#UID" when /etc/passwd does not name it.
  const names = userNames();
  const states = (await cli.runtime().list()).map((s) =>
    s.owner && /^\d+$/.test(s.owner) ? { ...s, owner: names.get(s.owner) ?? `#${s.owner}` } : s,
  );
  const format = str(p, 'format') ?? 'table';
  if (p.flags.quiet) {
    for (const s of states) writeStdout(`${s.id}\n`);
  } else if (format === 'json') {
    // runc's key order (its containerState struct): pid before status, annotations only when there are some.
    const rows = states.map((s) => ({
      ociVersion: s.ociVersion,
      id: s.id,
      pid: s.pid ?? 0,
      status: s.status,
      bundle: s.bundle,
      rootfs: s.rootfs,
      created: s.created,
      ...(s.annotations && Object.keys(s.annotations).length ? { annotations: s.annotations } : {}),
      owner: s.owner,
    }));
    writeStdout(JSON.stringify(rows) + '\n');
  } else if (format === 'table') {
    const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER']];
    for (const s of states) rows.push([s.id, String(s.pid ?? 0), s.status, s.bundle, s.created ?? '', s.owner ?? '']);
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows)
      writeStdout(r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i] + 2) : c)).join('') + '\n');
  } else throw new HakoError(`list: invalid format "${format}" (table or json)`, { field: '--format' });
  return 0;
}
