// The shim's command line as containerd's runtime/v2/shim package defines it (Go `flag` syntax: flags before
// the subcommand; `-f v`, `--f v` and `-f=v` alike; booleans take no value).
export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  debug: boolean;
  version: boolean;
  /** `start`, `delete`, `spare` (lib/shim/spare.ts; never containerd's), or '' = serve. */
  command: string;
}

const VALUE_FLAGS: Record<string, keyof ShimFlags> = {
  namespace: 'namespace',
  address: 'address',
  'publish-binary': 'publishBinary',
  id: 'id',
  bundle: 'bundle',
  socket: 'bundle', // never sent by containerd; accepted so a stray flag is not taken as the subcommand
};
const BOOL_FLAGS: Record<string, keyof ShimFlags> = { debug: 'debug', v: 'version' };

export class FlagError extends Error {}

export function parseFlags(argv: string[]): ShimFlags {
  const f: ShimFlags = {
    namespace: '',
    address: '',
    publishBinary: '',
    id: '',
    bundle: '',
    debug: false,
    version: false,
    command: '',
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    if (BOOL_FLAGS[name]) {
      const v = eq < 0 ? 'true' : body.slice(eq + 1);
      if (!['true', 'false', '1', '0', 't', 'f', 'TRUE', 'FALSE', 'True', 'False'].includes(v))
        throw new FlagError(`invalid boolean value ${JSON.stringify(v)} for -${name}`);
      (f as unknown as Record<string, unknown>)[BOOL_FLAGS[name]] = ['true', '1', 't', 'TRUE', 'True'].includes(v);
      continue;
    }
    const key = VALUE_FLAGS[name];
    if (!key) throw new FlagError(`flag provided but not defined: -${name}`);
    let v: string;
    if (eq >= 0) v = body.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: -${name}`);
      v = argv[++i];
    }
    (f as unknown as Record<string, unknown>)[key] = v;
  }
  f.command = argv[i] ?? '';
  if (argv.length > i + 1)
    throw new FlagError(`unexpected arguments after ${f.command}: ${argv.slice(i + 1).join(' ')}`);
  if (f.command && !['start', 'delete', 'spare'].includes(f.command))
    throw new FlagError(`unknown subcommand ${JSON.stringify(f.command)} (start, delete, or none to serve)`);
  return f;
}
