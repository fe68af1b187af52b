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
