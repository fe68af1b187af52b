/**
 * One error type for everything hako reports. `field` names the config field or CLI argument at fault,
 * `errno`/`step` carry what the kernel said and where, so a message always has its context.
 */
export class HakoError extends Error {
  readonly field?: string;
  readonly errno?: number;
  readonly step?: string;
  readonly code?: string;

  constructor(message: string, opts: { field?: string; errno?: number; step?: string; code?: string } = {}) {
    super(message);
    this.name = 'HakoError';
    this.field = opts.field;
    this.errno = opts.errno;
    this.step = opts.step;
    this.code = opts.code;
  }
}

/** A config field is invalid: the message starts with the field's JSON path. */
export function invalidField(field: string, problem: string): HakoError {
  return new HakoError(`${field}: ${problem}`, { field, code: 'EINVAL_CONFIG' });
}

/**
 * A config value as an error message shows it: JSON, cut at `max` characters, so that a 1 MB string or an
 * array of 5000 strings named in an error does not become the error. Objects and arrays are described, not
 * printed (they may nest deep enough that printing them is the problem).
 */
export function shown(v: unknown, max = 64): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'object' && v !== null) return 'an object';
  let s: string;
  try {
    s = typeof v === 'string' ? JSON.stringify(v) : String(v);
  } catch {
    s = typeof v;
  }
  return s.length > max ? `${s.slice(0, max)}… (${s.length} characters)` : s;
}
