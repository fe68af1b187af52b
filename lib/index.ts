// hako's library API: `import { Runtime } from 'hako'`.
export { Runtime, Container, parseSched } from './runtime/runtime';
export type { RuntimeOptions, CreateOptions, SetupOptions, ExecOptions, ExitStatus } from './runtime/runtime';
export { Pool } from './runtime/pool';
export type { PoolOptions, PooledRun } from './runtime/pool';
export { makeExampleBundle } from './example';
export type { ExampleBundleOptions } from './example';
export { HakoError } from './errors';
export { PolicyServer, policySeccompSection, parsePolicy, loadPolicy } from './policy';
export type { PolicyServerOptions, Policy, PolicySeccompOptions, AuditRecord, AuditSuppressedRecord } from './policy';
export { defaultSeccompProfile } from './seccomp';
export { defaultSpec } from './default-spec';
export { features } from './oci/features';
export { createLogger } from './log';
export type { Logger } from './log';
export * from './oci/types';
