// Over 400 lines because it is the whole policy format, one checker per section, each error worded the same way.
// The policy file: validated into a compiled Policy. Every error names the file, the line and the field,
// e.g. `policy.yaml:14: profiles[0].mount[0].limits.size: invalid size "64q" (a number with k/m/g or %)`.
// The format is documented in docs/policy.md.
import * as fs from 'fs';
import { DocumentError, parseDocument, type ParsedDocument, type Value } from './document';
import { ERRNO, MOUNT_FLAGS } from './constants';

export class PolicyError extends Error {
  constructor(
    message: string,
    readonly file: string,
    readonly line: number | undefined,
    readonly field: string | undefined,
  ) {
    super(message);
    this.name = 'PolicyError';
  }
}

/** A path pattern: "/foo" exact, "/mnt/*" one component below /mnt, "/mnt/**" anything below /mnt. */
export interface PathPattern {
  source: string;
  re: RegExp;
}

export interface Match {
  ids?: RegExp[];
  annotations?: [string, RegExp][];
  metadata?: RegExp[];
}

export interface MountRule {
  field: string;
  /** Bind mounts of `sources` (paths in the container) instead of new filesystems. */
  bind: boolean;
  types: Set<string>;
  targets: PathPattern[];
  /** New mounts: the source string (a label for tmpfs); bind mounts: paths. Absent: any label / no bind. */
  sources?: PathPattern[] | RegExp[];
  /** MS_ bits the caller may pass. */
  flags: number;
  /** MOUNT_ATTR bits always applied. */
  forceAttrs: number;
  /** Allowed data options: key -> value pattern (null: any value, or a flag without value). */
  options: Map<string, RegExp | null>;
  /** Options that must be present and are bounded (sizes in bytes, counts). */
  limits: Map<string, bigint>;
  /** Act with host credentials in the caller's mount namespace instead of as its user namespace root. */
  privileged: boolean;
}

export interface UmountRule {
  field: string;
  targets: PathPattern[];
  detach: boolean;
}

export interface DeviceRule {
  type: 'c' | 'b';
  major: [number, number];
  minor: [number, number];
}

export interface MknodRule {
  field: string;
  paths: PathPattern[];
  devices: DeviceRule[];
  /** fifos, sockets and regular files (no privilege involved) */
  nodes: boolean;
}

export interface HostnameRule {
  field: string;
  names: RegExp[];
  domainnames: RegExp[];
}

export interface XattrRule {
  field: string;
  paths: PathPattern[];
  names: RegExp[];
  maxSize: number;
}

export interface ChownRule {
  field: string;
  paths: PathPattern[];
  uids: [number, number][];
  gids: [number, number][];
}

export interface Profile {
  name: string;
  field: string;
  match: Match;
  errno: number;
  mount: MountRule[];
  umount: UmountRule[];
  mknod: MknodRule[];
  sethostname: HostnameRule | null;
  setxattr: XattrRule[];
  chown: ChownRule[];
}

export interface Policy {
  file: string;
  defaultErrno: number;
  audit: boolean;
  timeoutMs: number;
  /** Emulations in flight per container; more are answered EAGAIN. */
  maxPending: number;
  /** Audit records per container: a token bucket; null = unlimited (`auditLimit: false`). */
  auditLimit: AuditLimit | null;
  profiles: Profile[];
}

export interface AuditLimit {
  /** Records per second, sustained. */
  rate: number;
  /** Records at once, after a quiet period. */
  burst: number;
  /** How often a record says how many were suppressed (also when the container is released). */
  reportMs: number;
}

/** 155,000 records (45 MB) in 10 s from one container's flood is what the default prevents. */
export const DEFAULT_AUDIT_LIMIT: Readonly<AuditLimit> = Object.freeze({ rate: 50, burst: 200, reportMs: 10_000 });

// ---------------------------------------------------------------- helpers

function globToRegExp(glob: string, anchorSlash = false): RegExp {
  let re = '';
  for (const c of glob) {
    if (c === '*') re += anchorSlash ? '[^/]*' : '.*';
    else if (c === '?') re += anchorSlash ? '[^/]' : '.';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

/** Lexical normalization of an absolute path: no "", ".", ".." components; "/" stays "/". */
export function normalizePath(p: string): string {
  const out: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') out.pop();
    else out.push(c);
  }
  return '/' + out.join('/');
}

export function matchPath(patterns: PathPattern[], p: string): boolean {
  return patterns.some((x) => x.re.test(p));
}

const SIZE_RE = /^(0x[0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)([kKmMgGtTpPeE]?)$/;

/** The kernel's memparse(): a C integer (0x hex, 0 octal) with an optional k/m/g/t/p/e suffix. */
export function memparse(s: string): bigint | null {
  const m = SIZE_RE.exec(s);
  if (!m) return null;
  let v = m[1].startsWith('0x')
    ? BigInt(m[1])
    : m[1].length > 1 && m[1].startsWith('0')
      ? BigInt('0o' + m[1].slice(1))
      : BigInt(m[1]);
  const shift = ' kmgtpe'.indexOf(m[2].toLowerCase() || ' ');
  v <<= BigInt(10 * shift);
  return v;
}

class Checker {
  constructor(
    readonly file: string,
    readonly doc: ParsedDocument,
  ) {}

  line(field: string): number | undefined {
    // The field, else its closest ancestor that has a line.
    let f = field;
    for (;;) {
      const l = this.doc.lines.get(f);
      if (l !== undefined) return l;
      const cut = Math.max(f.lastIndexOf('.'), f.lastIndexOf('['));
      if (cut <= 0) return this.doc.lines.get('');
      f = f.slice(0, cut);
    }
  }

  fail(field: string, msg: string): never {
    const line = this.line(field);
    throw new PolicyError(
      `${this.file}${line !== undefined ? `:${line}` : ''}: ${field}: ${msg}`,
      this.file,
      line,
      field,
    );
  }

  obj(v: Value | undefined, field: string, keys: readonly string[]): { [k: string]: Value } {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(field, 'must be an object');
    const o = v as { [k: string]: Value };
    for (const k of Object.keys(o))
      if (!keys.includes(k)) this.fail(field ? `${field}.${k}` : k, `unknown field (allowed: ${keys.join(', ')})`);
    return o;
  }

  arr(v: Value | undefined, field: string): Value[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(field, 'must be a list');
    return v as Value[];
  }

  strs(v: Value | undefined, field: string, opts: { allowSingle?: boolean } = {}): string[] {
    if (v === undefined || v === null) return [];
    if (typeof v === 'string' && opts.allowSingle !== false) return [v];
    return this.arr(v, field).map((x, i) => {
      if (typeof x !== 'string') this.fail(`${field}[${i}]`, 'must be a string');
      return x as string;
    });
  }

  bool(v: Value | undefined, field: string, dflt: boolean): boolean {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') this.fail(field, 'must be true or false');
    return v as boolean;
  }

  int(v: Value | undefined, field: string, dflt: number, min: number, max: number): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      this.fail(field, `must be an integer from ${min} to ${max}`);
    return v as number;
  }

  errno(v: Value | undefined, field: string, dflt: number): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v === 'string') {
      const e = ERRNO[v.toUpperCase()];
      if (e === undefined)
        this.fail(field, `unknown errno name ${JSON.stringify(v)} (known: ${Object.keys(ERRNO).join(', ')})`);
      return e;
    }
    if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 4095 && !(v >= 512 && v <= 530)) return v;
    return this.fail(field, 'must be an errno name (EPERM) or a number from 1 to 4095 (not 512-530)');
  }

  paths(v: Value | undefined, field: string, required: boolean): PathPattern[] {
    const list = this.strs(v, field);
    if (required && list.length === 0) this.fail(field, 'at least one path is required');
    return list.map((s, i) => {
      const f = `${field}[${i}]`;
      if (!s.startsWith('/')) this.fail(f, `${JSON.stringify(s)}: paths must be absolute`);
      const comps = s.split('/').slice(1);
      if (s !== '/' && comps.some((c) => c === '' || c === '.' || c === '..'))
        this.fail(f, `${JSON.stringify(s)}: write the path normalized (no "//", "." or "..")`);
      let re = '^';
      comps.forEach((c, k) => {
        if (s === '/') return;
        if (c === '**') {
          if (k !== comps.length - 1) this.fail(f, `${JSON.stringify(s)}: "**" is only allowed as the last component`);
          re += '(?:/[^/]+)+';
          return;
        }
        if (c.includes('**')) this.fail(f, `${JSON.stringify(s)}: "**" must be a whole component`);
        re += '/' + globToRegExp(c, true).source.slice(1, -1);
      });
      if (s === '/') re += '/';
      return { source: s, re: new RegExp(re + '$', 's') };
    });
  }

  globs(v: Value | undefined, field: string): RegExp[] {
    return this.strs(v, field).map((s) => globToRegExp(s));
  }

  regexps(v: Value | undefined, field: string): RegExp[] {
    return this.strs(v, field).map((s, i) => {
      try {
        return new RegExp(s.startsWith('^') ? s : `^(?:${s})$`, 's');
      } catch (e) {
        return this.fail(`${field}[${i}]`, `invalid regular expression: ${(e as Error).message}`);
      }
    });
  }

  range(v: Value, field: string): [number, number] {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return [v, v];
    if (v === '*') return [0, 0xffffffff];
    if (
      Array.isArray(v) &&
      v.length === 2 &&
      v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0) &&
      (v[0] as number) <= (v[1] as number)
    )
      return [v[0] as number, v[1] as number];
    return this.fail(field, 'must be a number, [low, high] or "*"');
  }
}

const FLAG_NAMES = Object.keys(MOUNT_FLAGS);

function mountRule(c: Checker, v: Value, field: string): MountRule {
  const o = c.obj(v, field, [
    'types',
    'bind',
    'targets',
    'sources',
    'flags',
    'forceFlags',
    'options',
    'limits',
    'privileged',
  ]);
  const bind = c.bool(o.bind, `${field}.bind`, false);
  const types = new Set(c.strs(o.types, `${field}.types`));
  if (!bind && types.size === 0)
    c.fail(`${field}.types`, 'list the filesystem types this rule allows (or set bind: true)');
  if (bind && types.size) c.fail(`${field}.types`, 'a bind rule has no types');
  for (const t of types)
    if (!/^[a-z0-9_.-]+$/i.test(t)) c.fail(`${field}.types`, `invalid filesystem type ${JSON.stringify(t)}`);
  const targets = c.paths(o.targets, `${field}.targets`, true);
  let sources: MountRule['sources'];
  if (bind) sources = c.paths(o.sources, `${field}.sources`, true);
  else if (o.sources !== undefined) sources = c.globs(o.sources, `${field}.sources`);
  let flags = 0;
  c.strs(o.flags, `${field}.flags`).forEach((n, i) => {
    const f = MOUNT_FLAGS[n];
    if (!f) c.fail(`${field}.flags[${i}]`, `unknown flag ${JSON.stringify(n)} (known: ${FLAG_NAMES.join(', ')})`);
    if (f.bindOnly && !bind) c.fail(`${field}.flags[${i}]`, `${n} applies to bind mounts only`);
    flags |= f.ms;
  });
  let forceAttrs = 0;
  const force = o.forceFlags === undefined ? ['nosuid', 'nodev'] : c.strs(o.forceFlags, `${field}.forceFlags`);
  force.forEach((n, i) => {
    const f = MOUNT_FLAGS[n];
    if (!f || f.attr === undefined)
      c.fail(
        `${field}.forceFlags[${i}]`,
        `${JSON.stringify(n)} cannot be forced (ro, nosuid, nodev, noexec, nosymfollow, noatime, nodiratime, strictatime)`,
      );
    forceAttrs |= f.attr;
  });
  const options = new Map<string, RegExp | null>();
  if (o.options !== undefined && o.options !== null) {
    if (Array.isArray(o.options)) {
      c.strs(o.options, `${field}.options`).forEach((k) => options.set(k, null));
    } else {
      const m = c.obj(o.options, `${field}.options`, Object.keys(o.options as object));
      for (const [k, pat] of Object.entries(m)) {
        if (pat === null || pat === true) options.set(k, null);
        else if (typeof pat === 'string') options.set(k, c.regexps(pat, `${field}.options.${k}`)[0]);
        else c.fail(`${field}.options.${k}`, 'must be a regular expression for the value, or null/true for any value');
      }
    }
  }
  if (bind && options.size) c.fail(`${field}.options`, 'a bind mount has no data options');
  const limits = new Map<string, bigint>();
  if (o.limits !== undefined && o.limits !== null) {
    if (bind) c.fail(`${field}.limits`, 'a bind mount has no limits');
    const m = c.obj(o.limits, `${field}.limits`, Object.keys(o.limits as object));
    for (const [k, lv] of Object.entries(m)) {
      const lf = `${field}.limits.${k}`;
      const parsed =
        typeof lv === 'number' && Number.isInteger(lv) && lv > 0
          ? BigInt(lv)
          : typeof lv === 'string'
            ? memparse(lv)
            : null;
      if (parsed === null || parsed <= 0n)
        c.fail(lf, `invalid limit ${JSON.stringify(lv)} (a positive number, sizes may use k/m/g)`);
      limits.set(k, parsed);
      if (!options.has(k)) options.set(k, null); // a limited option is an allowed option
    }
  }
  return {
    field,
    bind,
    types,
    targets,
    sources,
    flags,
    forceAttrs,
    options,
    limits,
    privileged: c.bool(o.privileged, `${field}.privileged`, false),
  };
}

function profile(c: Checker, v: Value, field: string, dfltErrno: number): Profile {
  const o = c.obj(v, field, ['name', 'match', 'errno', 'mount', 'umount', 'mknod', 'sethostname', 'setxattr', 'chown']);
  const match: Match = {};
  if (o.match !== undefined && o.match !== null) {
    const m = c.obj(o.match, `${field}.match`, ['ids', 'annotations', 'metadata']);
    if (m.ids !== undefined) match.ids = c.globs(m.ids, `${field}.match.ids`);
    if (m.metadata !== undefined) match.metadata = c.globs(m.metadata, `${field}.match.metadata`);
    if (m.annotations !== undefined) {
      const a = c.obj(m.annotations, `${field}.match.annotations`, Object.keys((m.annotations as object) ?? {}));
      match.annotations = Object.entries(a).map(([k, val]) => {
        if (typeof val !== 'string') c.fail(`${field}.match.annotations.${k}`, 'must be a string (glob)');
        return [k, c.globs(val, `${field}.match.annotations.${k}`)[0]];
      });
    }
  }
  const name =
    o.name === undefined
      ? `profile ${field}`
      : typeof o.name === 'string'
        ? o.name
        : c.fail(`${field}.name`, 'must be a string');
  const mount = c.arr(o.mount, `${field}.mount`).map((r, i) => mountRule(c, r, `${field}.mount[${i}]`));
  const umount = c.arr(o.umount, `${field}.umount`).map((r, i) => {
    const f = `${field}.umount[${i}]`;
    const u = c.obj(r, f, ['targets', 'flags']);
    const flags = c.strs(u.flags, `${f}.flags`);
    flags.forEach((n, k) => {
      if (n !== 'detach' && n !== 'nofollow')
        c.fail(`${f}.flags[${k}]`, `unknown or unsupported umount flag ${JSON.stringify(n)} (detach, nofollow)`);
    });
    return { field: f, targets: c.paths(u.targets, `${f}.targets`, true), detach: flags.includes('detach') };
  });
  const mknod = c.arr(o.mknod, `${field}.mknod`).map((r, i) => {
    const f = `${field}.mknod[${i}]`;
    const m = c.obj(r, f, ['paths', 'devices', 'nodes']);
    const devices = c.arr(m.devices, `${f}.devices`).map((d, k) => {
      const df = `${f}.devices[${k}]`;
      const dd = c.obj(d, df, ['type', 'major', 'minor']);
      if (dd.type !== 'c' && dd.type !== 'b') c.fail(`${df}.type`, 'must be "c" (character) or "b" (block)');
      if (dd.major === undefined || dd.minor === undefined)
        c.fail(df, 'major and minor are required (a number, [low, high] or "*")');
      return {
        type: dd.type as 'c' | 'b',
        major: c.range(dd.major, `${df}.major`),
        minor: c.range(dd.minor, `${df}.minor`),
      };
    });
    return {
      field: f,
      paths: c.paths(m.paths, `${f}.paths`, true),
      devices,
      nodes: c.bool(m.nodes, `${f}.nodes`, false),
    };
  });
  let sethostname: HostnameRule | null = null;
  if (o.sethostname !== undefined && o.sethostname !== null) {
    const f = `${field}.sethostname`;
    const h = c.obj(o.sethostname, f, ['names', 'domainnames']);
    sethostname = {
      field: f,
      names: c.regexps(h.names, `${f}.names`),
      domainnames: c.regexps(h.domainnames, `${f}.domainnames`),
    };
  }
  const setxattr = c.arr(o.setxattr, `${field}.setxattr`).map((r, i) => {
    const f = `${field}.setxattr[${i}]`;
    const x = c.obj(r, f, ['paths', 'names', 'maxSize']);
    const names = c.globs(x.names, `${f}.names`);
    if (!names.length) c.fail(`${f}.names`, 'list the attribute names (globs, e.g. "user.*")');
    return {
      field: f,
      paths: c.paths(x.paths, `${f}.paths`, true),
      names,
      maxSize: c.int(x.maxSize, `${f}.maxSize`, 65536, 0, 65536),
    };
  });
  const chown = c.arr(o.chown, `${field}.chown`).map((r, i) => {
    const f = `${field}.chown[${i}]`;
    const x = c.obj(r, f, ['paths', 'uids', 'gids']);
    const ranges = (v2: Value | undefined, ff: string) => c.arr(v2, ff).map((e, k) => c.range(e, `${ff}[${k}]`));
    return {
      field: f,
      paths: c.paths(x.paths, `${f}.paths`, true),
      uids: ranges(x.uids, `${f}.uids`),
      gids: ranges(x.gids, `${f}.gids`),
    };
  });
  return {
    name,
    field,
    match,
    errno: c.errno(o.errno, `${field}.errno`, dfltErrno),
    mount,
    umount,
    mknod,
    sethostname,
    setxattr,
    chown,
  };
}

function auditLimit(c: Checker, v: Value | undefined): AuditLimit | null {
  if (v === false) return null;
  if (v === undefined || v === null) return { ...DEFAULT_AUDIT_LIMIT };
  const o = c.obj(v, 'auditLimit', ['rate', 'burst', 'reportSeconds']);
  return {
    rate: c.int(o.rate, 'auditLimit.rate', DEFAULT_AUDIT_LIMIT.rate, 1, 1_000_000),
    burst: c.int(o.burst, 'auditLimit.burst', DEFAULT_AUDIT_LIMIT.burst, 1, 1_000_000),
    reportMs: c.int(o.reportSeconds, 'auditLimit.reportSeconds', DEFAULT_AUDIT_LIMIT.reportMs / 1000, 1, 3600) * 1000,
  };
}

/** Validate a parsed document. */
export function compilePolicy(doc: ParsedDocument, file: string): Policy {
  const c = new Checker(file, doc);
  const o = c.obj(doc.value ?? {}, '', [
    'version',
    'defaultErrno',
    'audit',
    'auditLimit',
    'timeoutMs',
    'maxPending',
    'profiles',
  ]);
  if (o.version !== undefined && o.version !== 1) c.fail('version', 'only version 1 is known');
  const defaultErrno = c.errno(o.defaultErrno, 'defaultErrno', ERRNO.EPERM);
  const profiles = c.arr(o.profiles, 'profiles').map((p, i) => profile(c, p, `profiles[${i}]`, defaultErrno));
  return {
    file,
    defaultErrno,
    audit: c.bool(o.audit, 'audit', false),
    timeoutMs: c.int(o.timeoutMs, 'timeoutMs', 10_000, 10, 600_000),
    maxPending: c.int(o.maxPending, 'maxPending', 16, 1, 4096),
    auditLimit: auditLimit(c, o.auditLimit),
    profiles,
  };
}

/** Parse and validate policy text (JSON or YAML). Throws PolicyError with file:line: field. */
export function parsePolicy(text: string, file = 'policy'): Policy {
  let doc: ParsedDocument;
  try {
    doc = parseDocument(text, file);
  } catch (e) {
    if (e instanceof DocumentError) throw new PolicyError(e.message, file, e.line, undefined);
    throw e;
  }
  return compilePolicy(doc, file);
}

export function loadPolicy(file: string): Policy {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new PolicyError(`${file}: ${(e as Error).message}`, file, undefined, undefined);
  }
  return parsePolicy(text, file);
}

/** Does a profile apply to this container? */
export function profileMatches(
  p: Profile,
  c: { id: string; annotations: Record<string, string>; metadata: string },
): boolean {
  const m = p.match;
  if (m.ids && !m.ids.some((r) => r.test(c.id))) return false;
  if (m.metadata && !m.metadata.some((r) => r.test(c.metadata))) return false;
  if (
    m.annotations &&
    !m.annotations.every(([k, r]) => Object.prototype.hasOwnProperty.call(c.annotations, k) && r.test(c.annotations[k]))
  )
    return false;
  return true;
}

export function selectProfile(
  policy: Policy,
  c: { id: string; annotations: Record<string, string>; metadata: string },
): Profile | null {
  return policy.profiles.find((p) => profileMatches(p, c)) ?? null;
}
