// Validation of linux.seccomp into a normalized policy: return values computed, 64-bit operands as bigint, flags
// as bits. Every error names the JSON path of the field at fault.

import { invalidField, shown } from '../errors';
import type { LinuxSeccomp, SeccompAction, SeccompOperator } from '../oci/types';
import {
  SECCOMP_FILTER_FLAGS,
  SECCOMP_FILTER_FLAG_NEW_LISTENER,
  SECCOMP_FILTER_FLAG_TSYNC,
  SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_DATA,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_LOG,
  SECCOMP_RET_TRACE,
  SECCOMP_RET_TRAP,
  SECCOMP_RET_USER_NOTIF,
} from './constants';

const EPERM = 1;
const U64_MAX = (1n << 64n) - 1n;

const ACTION_RET: Readonly<Record<SeccompAction, number>> = {
  SCMP_ACT_KILL: SECCOMP_RET_KILL_THREAD, // libseccomp's SCMP_ACT_KILL is KILL_THREAD
  SCMP_ACT_KILL_THREAD: SECCOMP_RET_KILL_THREAD,
  SCMP_ACT_KILL_PROCESS: SECCOMP_RET_KILL_PROCESS,
  SCMP_ACT_TRAP: SECCOMP_RET_TRAP,
  SCMP_ACT_ERRNO: SECCOMP_RET_ERRNO,
  SCMP_ACT_TRACE: SECCOMP_RET_TRACE,
  SCMP_ACT_ALLOW: SECCOMP_RET_ALLOW,
  SCMP_ACT_LOG: SECCOMP_RET_LOG,
  SCMP_ACT_NOTIFY: SECCOMP_RET_USER_NOTIF,
};

export const OPERATORS: readonly SeccompOperator[] = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
];

/** One argument condition. For MASKED_EQ, `value` is the mask and `valueTwo` the expected result (libseccomp). */
export interface Condition {
  index: number;
  op: SeccompOperator;
  value: bigint;
  valueTwo: bigint;
}

export interface Rule {
  names: string[];
  /** SECCOMP_RET_* value with its data. */
  ret: number;
  action: SeccompAction;
  /** ANDed. */
  args: Condition[];
  /** `linux.seccomp.syscalls[i]`, for messages. */
  field: string;
}

export interface Policy {
  defaultAction: SeccompAction;
  defaultRet: number;
  rules: Rule[];
  flags: number;
  usesNotify: boolean;
}

function isAction(value: unknown): value is SeccompAction {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ACTION_RET, value);
}

/** Allow-like actions: runc's ENOSYS stub is not generated for them (a tracer or logger handles new syscalls). */
export function isPermissiveAction(action: SeccompAction): boolean {
  return action === 'SCMP_ACT_ALLOW' || action === 'SCMP_ACT_LOG' || action === 'SCMP_ACT_TRACE';
}

function actionRet(action: unknown, errnoRet: unknown, actionField: string, errnoField: string): number {
  if (!isAction(action)) {
    throw invalidField(
      actionField,
      `unknown action ${shown(action)}; expected one of ${Object.keys(ACTION_RET).join(', ')}`,
    );
  }
  const hasErrno = errnoRet !== undefined && errnoRet !== null;
  if (action === 'SCMP_ACT_ERRNO' || action === 'SCMP_ACT_TRACE') {
    let data = EPERM; // runc's default for both ERRNO and TRACE
    if (hasErrno) {
      if (typeof errnoRet !== 'number' || !Number.isInteger(errnoRet) || errnoRet < 0 || errnoRet > SECCOMP_RET_DATA) {
        throw invalidField(errnoField, `must be an integer from 0 to ${SECCOMP_RET_DATA}`);
      }
      data = errnoRet;
    }
    return (ACTION_RET[action] | data) >>> 0;
  }
  // runtime-spec: "When the action doesn't support an errno, the runtime MUST print an error and fail."
  if (hasErrno) throw invalidField(errnoField, `is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not ${action}`);
  return ACTION_RET[action] >>> 0;
}

/**
 * A 64-bit operand. JSON.parse turns integers above 2^53 into the nearest double (18446744073709551615 becomes
 * 2^64), so such numbers are refused rather than silently compared against a different value; callers that
 * parse configs with exact integers may pass a bigint.
 */
function operand(value: unknown, field: string): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n || value > U64_MAX) throw invalidField(field, 'must be within 0 .. 2^64-1');
    return value;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw invalidField(field, 'must be a non-negative integer');
  }
  if (!Number.isSafeInteger(value)) {
    throw invalidField(field, `${shown(value)} is above 2^53 and not exact after JSON parsing; pass it as a bigint`);
  }
  return BigInt(value);
}

function condition(raw: unknown, field: string, debug: (msg: string) => void): Condition {
  if (typeof raw !== 'object' || raw === null) throw invalidField(field, 'must be an object');
  const arg = raw as Record<string, unknown>;
  const index = arg.index;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 5) {
    throw invalidField(`${field}.index`, 'must be an integer from 0 to 5');
  }
  const op = arg.op;
  if (typeof op !== 'string' || !(OPERATORS as readonly string[]).includes(op)) {
    throw invalidField(`${field}.op`, `unknown operator ${shown(op)}; expected one of ${OPERATORS.join(', ')}`);
  }
  const value = operand(arg.value, `${field}.value`);
  const valueTwo =
    arg.valueTwo === undefined || arg.valueTwo === null ? 0n : operand(arg.valueTwo, `${field}.valueTwo`);
  if (op !== 'SCMP_CMP_MASKED_EQ' && valueTwo !== 0n) debug(`seccomp: ${field}.valueTwo is ignored by ${op}`);
  return { index, op: op as SeccompOperator, value, valueTwo };
}

function parseFlags(raw: unknown, usesNotify: boolean, debug: (msg: string) => void): number {
  if (raw === undefined || raw === null) raw = [];
  if (!Array.isArray(raw)) throw invalidField('linux.seccomp.flags', 'must be an array');
  let flags = 0;
  raw.forEach((name: unknown, i) => {
    if (typeof name !== 'string' || !Object.prototype.hasOwnProperty.call(SECCOMP_FILTER_FLAGS, name)) {
      throw invalidField(
        `linux.seccomp.flags[${i}]`,
        `unknown flag ${shown(name)}; expected one of ${Object.keys(SECCOMP_FILTER_FLAGS).join(', ')}`,
      );
    }
    flags |= SECCOMP_FILTER_FLAGS[name];
  });
  if (usesNotify) {
    flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
  } else {
    if (flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
      throw invalidField('linux.seccomp.flags', 'SECCOMP_FILTER_FLAG_NEW_LISTENER needs a rule with SCMP_ACT_NOTIFY');
    }
    if (flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) {
      // The kernel refuses it without NEW_LISTENER; libseccomp likewise applies it only when notify is used.
      debug('seccomp: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: no rule uses SCMP_ACT_NOTIFY');
      flags &= ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    }
  }
  // The kernel rejects TSYNC together with NEW_LISTENER unless TSYNC_ESRCH says how to report a sync failure.
  if (flags & SECCOMP_FILTER_FLAG_TSYNC && flags & SECCOMP_FILTER_FLAG_NEW_LISTENER) {
    flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
  }
  return flags;
}

export function parsePolicy(spec: LinuxSeccomp, debug: (msg: string) => void): Policy {
  if (typeof spec !== 'object' || spec === null) throw invalidField('linux.seccomp', 'must be an object');
  const defaultAction = spec.defaultAction;
  const defaultRet = actionRet(
    defaultAction,
    spec.defaultErrnoRet,
    'linux.seccomp.defaultAction',
    'linux.seccomp.defaultErrnoRet',
  );

  const rawRules: unknown = spec.syscalls ?? [];
  if (!Array.isArray(rawRules)) throw invalidField('linux.seccomp.syscalls', 'must be an array');
  const rules: Rule[] = rawRules.map((raw: unknown, i): Rule => {
    const field = `linux.seccomp.syscalls[${i}]`;
    if (typeof raw !== 'object' || raw === null) throw invalidField(field, 'must be an object');
    const r = raw as Record<string, unknown>;
    if (!Array.isArray(r.names) || r.names.length === 0)
      throw invalidField(`${field}.names`, 'must be a non-empty array');
    const names = r.names.map((n: unknown, j) => {
      if (typeof n !== 'string' || n === '') throw invalidField(`${field}.names[${j}]`, 'must be a non-empty string');
      return n;
    });
    const ret = actionRet(r.action, r.errnoRet, `${field}.action`, `${field}.errnoRet`);
    const rawArgs: unknown = r.args ?? [];
    if (!Array.isArray(rawArgs)) throw invalidField(`${field}.args`, 'must be an array');
    const args = rawArgs.map((a: unknown, k) => condition(a, `${field}.args[${k}]`, debug));
    return { names, ret, action: r.action as SeccompAction, args, field };
  });

  const usesNotify = defaultAction === 'SCMP_ACT_NOTIFY' || rules.some((r) => r.action === 'SCMP_ACT_NOTIFY');
  const flags = parseFlags(spec.flags, usesNotify, debug);

  const { listenerPath, listenerMetadata } = spec;
  if (listenerPath !== undefined && (typeof listenerPath !== 'string' || listenerPath === '')) {
    throw invalidField('linux.seccomp.listenerPath', 'must be a non-empty string');
  }
  if (listenerMetadata !== undefined && typeof listenerMetadata !== 'string') {
    throw invalidField('linux.seccomp.listenerMetadata', 'must be a string');
  }
  if (usesNotify && listenerPath === undefined) {
    throw invalidField('linux.seccomp.listenerPath', 'is required when an action is SCMP_ACT_NOTIFY');
  }
  if (listenerMetadata !== undefined && listenerPath === undefined) {
    throw invalidField('linux.seccomp.listenerMetadata', 'must not be set without linux.seccomp.listenerPath');
  }
  if (!usesNotify && listenerPath !== undefined) debug('seccomp: listenerPath ignored: no rule uses SCMP_ACT_NOTIFY');

  return { defaultAction, defaultRet, rules, flags, usesNotify };
}
