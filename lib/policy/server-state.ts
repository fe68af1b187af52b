// The policy server's shared state and its types: the options, the containers being served (by id and by
// listener), the counters, the policy in force. Every part of the server (connections.ts, registration.ts,
// listeners.ts, adoption.ts, keeper-link.ts, dispatch.ts, audit-log.ts) works on this one object, so that
// none of them imports another's class to reach it.
import type { Logger } from '../log';
import type { NotifyEventNotif } from '../native/addon';
import type { AuditSuppressedRecord } from './audit-limit';
import { selectProfile, type Policy, type Profile } from './schema';

export interface AuditRecord {
  time: string;
  container: string;
  pid: number;
  arch: string;
  syscall: string;
  args: Record<string, string | number | null>;
  decision: 'allow' | 'deny';
  errno: number;
  errnoName?: string;
  reason: string;
  /** Emulations: what the helper reported (stage ok = the call was made). */
  result?: { ret: number; errno: number; stage: string };
  /** Where the call was really done, as the container sees it: the helper found the object it acted on there. */
  where?: string;
  latencyUs: number;
}

/** What a test hook sees before a decision is made. */
export interface NotificationInfo {
  container: string;
  pid: number;
  syscall: string | null;
  notification: NotifyEventNotif;
}

export interface PolicyServerOptions {
  /** Unix socket path (the containers' linux.seccomp.listenerPath). */
  socket: string;
  /** The policy, or a file to load it from (JSON or YAML); `reload()` re-reads the file. */
  policy?: Policy;
  policyFile?: string;
  /** Group (name or gid) that may connect: the socket becomes 0770 with that group. Default 0700. */
  group?: string | number;
  /** Peer uids allowed to connect besides root (SO_PEERCRED). A single one (and no group) owns the 0700 socket. */
  users?: number[];
  log?: Logger;
  /** Receives audit records when the policy's `audit` switch is on (default: one JSON line on stdout). */
  audit?: (rec: AuditRecord) => void;
  /**
   * Receives the counts of audit records the policy's `auditLimit` suppressed (periodically and when a container
   * is released). Default: a JSON line on stdout, or a log warning when `audit` is given.
   */
  auditSuppressed?: (rec: AuditSuppressedRecord) => void;
  /** Notifications of one fd in TypeScript's hands at once (default 64). */
  window?: number;
  /** SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux >= 6.6; default false). */
  syncWakeUp?: boolean;
  /** Largest state message accepted (default 1 MiB). */
  maxMessageBytes?: number;
  /** A connection must deliver its message within this time (default 5 s). */
  connectTimeoutMs?: number;
  /**
   * Serve callers in the initial user namespace: containers without a user namespace (registered by root).
   * Off by default: such a caller's emulated call would be made with host privilege in the host's user
   * namespace, so the deployment must say it wants that.
   */
  hostCallers?: boolean;
  /**
   * Deposit every notify fd in hako-fd-keeper so that running containers are served again after this server
   * restarts or crashes (lib/policy/keeper.ts; default true). close() leaves them there unless told to release.
   */
  keeper?: boolean;
  /**
   * Tests: beforeDecision is awaited before each decision; afterPinning runs (synchronously) when a
   * registration has opened the container init's namespaces and before it reads them.
   */
  hooks?: { beforeDecision?(n: NotificationInfo): void | Promise<void>; afterPinning?(initPid: number): void };
}

export interface ContainerRec {
  id: string;
  pid: number;
  bundle: string;
  annotations: Record<string, string>;
  metadata: string;
  listeners: Set<number>;
  pending: number;
  profile?: { gen: number; profile: Profile | null };
  /** The uid of the peer that registered it (0: the runtime as root). */
  owner: number;
  /** Its init's user and pid namespaces (inodes; the fds pin them while the container is registered). */
  userns: number;
  pidns: number;
  nsFds: number[];
}

export interface PolicyServerStats {
  notifications: number;
  allowed: number;
  denied: number;
  failed: number;
  gone: number;
  connections: number;
  rejected: number;
}

export class ServerState {
  /** Bumped with every policy: a container's cached profile is selected again. */
  gen = 1;
  /** The native notify server (0 until start()). */
  sid = 0;
  closed = false;
  readonly containersById = new Map<string, ContainerRec>();
  readonly byListener = new Map<number, ContainerRec>();
  readonly stats: PolicyServerStats = {
    notifications: 0,
    allowed: 0,
    denied: 0,
    failed: 0,
    gone: 0,
    connections: 0,
    rejected: 0,
  };

  constructor(
    readonly opts: PolicyServerOptions,
    /** The socket, resolved; the keeper's socket is named after it (keeper.ts). */
    readonly socketPath: string,
    readonly log: Logger,
    public policy: Policy,
    /** The PolicyServer's EventEmitter.emit: the parts report through their owner's events. */
    readonly emit: (event: string, ...args: unknown[]) => void,
  ) {}

  profileFor(c: ContainerRec): Profile | null {
    if (c.profile?.gen !== this.gen) c.profile = { gen: this.gen, profile: selectProfile(this.policy, c) };
    return c.profile.profile;
  }
}
