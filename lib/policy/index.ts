// The access-control policy server for seccomp user notifications (issue 7); see docs/policy.md.
export { PolicyServer, policyHelperPath } from './server';
export type { AuditRecord, NotificationInfo, PolicyServerOptions, PolicyServerStats } from './server';
export { policySeccompSection, NEW_MOUNT_API, IO_URING } from './seccomp';
export type { PolicySeccompOptions } from './seccomp';
export type { AuditSuppressedRecord } from './audit-limit';
export { parsePolicy, loadPolicy, compilePolicy, selectProfile, normalizePath, PolicyError } from './schema';
export type {
  AuditLimit,
  Policy,
  Profile,
  MountRule,
  UmountRule,
  MknodRule,
  XattrRule,
  ChownRule,
  HostnameRule,
} from './schema';
export { decide, describeCall } from './decide';
export type { Decision, DecisionContext } from './decide';
export { parseDocument, parseJson, parseYaml, DocumentError } from './document';
