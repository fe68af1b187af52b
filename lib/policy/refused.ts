// Calls the policy section refuses in the kernel (SCMP_ACT_ERRNO: the new mount API, io_uring, ...) never
// reach the server, so they leave no audit record. With `kernelRefusals: 'notify'` the section notifies them
// instead and the server answers each with the very errno the filter would have returned, and audits it. This
// module knows which (arch, nr) those are and their errno: it reads them off the section builder itself, so
// the two cannot disagree when a rule is added there.
import { ARCHES } from '../seccomp/arch';
import type { Decision } from './decide';
import type { NotifyEventNotif } from '../native/addon';
import { policySeccompSection } from './seccomp';

interface Refusal {
  name: string;
  errno: number;
}

let table: Map<string, Refusal> | undefined;

function build(): Map<string, Refusal> {
  const m = new Map<string, Refusal>();
  const sec = policySeccompSection('/refused', { kernelRefusals: 'errno' });
  for (const rule of sec.syscalls ?? []) {
    if (rule.action !== 'SCMP_ACT_ERRNO' || rule.args?.length) continue;
    for (const a of Object.values(ARCHES)) {
      if (a.name === 'SCMP_ARCH_X32') continue; // killed by the filter, never notified
      for (const name of rule.names) {
        const nr = a.table[name];
        if (nr !== undefined) m.set(`${a.audit >>> 0}:${(nr | a.nrBase) >>> 0}`, { name, errno: rule.errnoRet ?? 1 });
      }
    }
  }
  return m;
}

/** The filter's own refusal of this call, if the section refuses it: its name and errno. */
export function kernelRefusal(n: Pick<NotifyEventNotif, 'arch' | 'nr'>): Refusal | null {
  table ??= build();
  return table.get(`${n.arch >>> 0}:${n.nr >>> 0}`) ?? null;
}

/** The decision for a refused call that was notified (kernelRefusals: 'notify'), else null. */
export function refusedDecision(n: NotifyEventNotif): (Decision & { action: 'deny' }) | null {
  const r = kernelRefusal(n);
  return r
    ? {
        action: 'deny',
        errno: r.errno,
        reason: `${r.name}: refused for every container, as the filter refuses it (kernelRefusals: notify)`,
      }
    : null;
}
