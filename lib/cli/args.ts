// A small runc-style argument parser: `--flag value`, `--flag=value`, `-f value`, boolean flags,
// positional arguments; flags may follow positionals, as urfave/cli (runc) allows.
import { HakoError } from '../errors';

export interface FlagSpec {
  name: string;
  alias?: string;
  type: 'string' | 'boolean' | 'number';
  multiple?: boolean;
  /** For the help text (lib/cli/verbs.ts): what the flag does, and the name of its value. */
  usage?: string;
  value?: string;
}

export interface Parsed {
  flags: Record<string, string | boolean | number | string[] | undefined>;
  positional: string[];
}

/** `command` prefixes the errors ("create: flag provided but not defined: -x"); '' for the global flags, whose errors the CLI prefixes with "hako: " itself. */
export function parseArgs(argv: string[], specs: FlagSpec[], command: string, opts: { stopAtPositional?: boolean } = {}): Parsed {
  const pre = command ? `${command}: ` : '';
  const byName = new Map<string, FlagSpec>();
  for (const s of specs) {
    byName.set(s.name, s);
    if (s.alias) byName.set(s.alias, s);
  }
  const out: Parsed = { flags: {}, positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.positional.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      if (opts.stopAtPositional) {
        out.positional.push(...argv.slice(i));
        break;
      }
      out.positional.push(a);
      continue;
    }
    const body = a.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const key = eq >= 0 ? body.slice(0, eq) : body;
    const spec = byName.get(key);
    if (!spec) throw new HakoError(`${pre}flag provided but not defined: -${key}`, { field: a });
    let value: string | undefined = eq >= 0 ? body.slice(eq + 1) : undefined;
    if (spec.type === 'boolean') {
      out.flags[spec.name] = value === undefined ? true : value !== 'false';
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new HakoError(`${pre}flag needs an argument: -${key}`, { field: a });
      value = argv[++i];
    }
    if (spec.type === 'number') {
      if (!/^\d+$/.test(value)) throw new HakoError(`${pre}invalid value "${value}" for flag -${key}`, { field: `--${spec.name}` });
      out.flags[spec.name] = Number(value);
    } else if (spec.multiple) {
      ((out.flags[spec.name] as string[] | undefined) ?? (out.flags[spec.name] = [])).push(value);
    } else out.flags[spec.name] = value;
  }
  return out;
}
