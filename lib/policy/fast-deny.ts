// Denials decided on the native thread, without a trip to the event loop (notify_listener.cc, notifySetFixed): calls
// whose answer depends on nothing but the container and the call number. One such case is taken, where
// decide() provably returns the same errno whatever the arguments, caller or credentials: no profile matches
// the container, so every call gets the policy's defaultErrno.
// Not taken: a profile that merely has no rule for a family (decide() checks the arguments first there: an
// unreadable pointer gets EFAULT, as from the kernel), and kernel-refused calls notified for their audit
// record (kernelRefusals: 'notify', refused.ts), which would be recorded once per batch. The event loop still
// sees every call: one event per batch carries the count (stats, audit: dispatch.ts onFast) and one call's
// arguments for its record.
import type { Policy, Profile } from './schema';
import { nativeLayouts } from './syscalls';

export function fixedDenials(policy: Policy, profile: Profile | null): [number, number, number][] {
  return profile ? [] : nativeLayouts().map(([arch, nr]): [number, number, number] => [arch, nr, policy.defaultErrno]);
}
