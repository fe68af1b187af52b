// linux.cgroupsPath for the systemd driver: "slice:prefix:name", as runc and crun take it.
//
// - slice: a slice unit name ("kubepods-besteffort.slice"); empty means the default slice, "system.slice" on
//   the system bus and "user.slice" on a user's bus (runc's defaults). systemd names nested slices by their
//   path with "-": "a-b.slice" lives in "a.slice/a-b.slice" (systemd.slice(5)), so its cgroup directory is
//   the expansion; "-.slice" is the root slice.
// - prefix and name: the scope is "prefix-name.scope" ("name.scope" without a prefix, as crun).
// An unset cgroupsPath with the systemd driver is "<default slice>:hako:<id>" (runc uses its own name, "runc").

import { invalidField } from '../../errors';

export interface SystemdPath {
  /** The slice unit, e.g. "kubepods-besteffort.slice". */
  slice: string;
  /** The scope unit the container gets, e.g. "cri-containerd-ID.scope". */
  unit: string;
  /** The scope's cgroup below the hierarchy root, e.g. "/kubepods.slice/kubepods-besteffort.slice/cri-containerd-ID.scope". */
  cgroup: string;
  /** The normalized "slice:prefix:name" (the default slice filled in), kept in the container's state. */
  normalized: string;
}

const FIELD = 'linux.cgroupsPath';
/** The characters systemd allows in a unit name (unit_name_is_valid: letters, digits, ":-_.\\"). */
const UNIT_CHARS = /^[A-Za-z0-9:_.\\-]+$/;

/** "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" -> "". Throws naming the field. */
export function expandSlice(slice: string, field = FIELD): string {
  const bad = (why: string) => invalidField(field, `slice ${JSON.stringify(slice)} ${why}`);
  if (!slice.endsWith('.slice') || slice.length <= '.slice'.length)
    throw bad('is not a slice unit name (it must end in ".slice")');
  if (slice.includes('/')) throw bad('must not contain "/"');
  if (!UNIT_CHARS.test(slice)) throw bad('holds characters systemd does not allow in a unit name');
  const base = slice.slice(0, -'.slice'.length);
  if (base === '-') return '';
  let out = '';
  let prefix = '';
  for (const part of base.split('-')) {
    // systemd refuses "a--b.slice", "-a.slice" and "a-.slice": each dash separates one level from the next.
    if (part === '') throw bad('has an empty component (a leading, trailing or doubled "-")');
    out += `/${prefix}${part}.slice`;
    prefix += `${part}-`;
  }
  return out;
}

/**
 * Parses and validates cgroupsPath for the systemd driver. `user`: the container goes to a user's systemd
 * (rootless), whose default slice is "user.slice".
 */
export function parseSystemdPath(raw: string | undefined, id: string, user = false): SystemdPath {
  const value = raw ?? '';
  const triple = value === '' ? `:hako:${id}` : value;
  const parts = triple.split(':');
  if (parts.length !== 3 || parts[2] === '')
    throw invalidField(
      FIELD,
      `${JSON.stringify(value)} is not of the form "slice:prefix:name" that the systemd cgroup driver (--systemd-cgroup) takes`,
    );
  const [sliceIn, prefix, name] = parts;
  const slice = sliceIn === '' ? (user ? 'user.slice' : 'system.slice') : sliceIn;
  const slicePath = expandSlice(slice);
  if (name.endsWith('.slice'))
    throw invalidField(
      FIELD,
      `${JSON.stringify(value)}: the name ${JSON.stringify(name)} is a slice; hako puts a container in a scope ("slice:prefix:name" with a name not ending in ".slice")`,
    );
  const unit = prefix === '' ? `${name}.scope` : `${prefix}-${name}.scope`;
  if (!UNIT_CHARS.test(unit) || unit.length > 255)
    throw invalidField(
      FIELD,
      `${JSON.stringify(value)}: the scope name ${JSON.stringify(unit)} is not a valid systemd unit name (letters, digits, "-", "_", "." and "\\", at most 255 characters)`,
    );
  return { slice, unit, cgroup: `${slicePath}/${unit}`, normalized: `${slice}:${prefix}:${name}` };
}
