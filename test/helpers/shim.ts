// Driving hako's containerd shim as containerd does, without containerd: bundles in containerd's layout
// (<dir>/<namespace>/<id>/config.json, the rootfs a read-only bind of a busybox tree), the shim started with
// `start` in a bundle (it prints the socket of the server it spawned), and Task calls over that ttrpc socket.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultSpec } from '../../lib/default-spec';
import { Fields, Writer } from '../../lib/shim/proto';
import { Client } from '../../lib/shim/ttrpc';
import { TASK_SERVICE } from '../../lib/shim/messages';
import { BUSYBOX } from './env';

const REPO = path.join(__dirname, '..', '..', '..');
export const SHIM_MAIN = path.join(REPO, 'dist', 'lib', 'shim', 'main.js');
export const SHIM_LAUNCHER = path.join(REPO, 'bin', 'containerd-shim-hako-v2');

export class ShimEnv {
  readonly lower: string;
  /** containerd's -address (nothing listens there: without TTRPC_ADDRESS the shim publishes no events). */
  readonly address: string;

  constructor(
    readonly base: string,
    readonly namespace: string,
  ) {
    this.lower = path.join(base, 'lower');
    this.address = path.join(base, 'containerd.sock');
    fs.mkdirSync(path.join(this.lower, 'bin'), { recursive: true });
    for (const d of ['proc', 'sys', 'dev', 'tmp']) fs.mkdirSync(path.join(this.lower, d));
    fs.copyFileSync(BUSYBOX!, path.join(this.lower, 'bin', 'busybox'));
    for (const t of ['sh', 'echo', 'cat', 'sleep', 'true']) fs.symlinkSync('busybox', path.join(this.lower, 'bin', t));
  }

  get hakoRoot(): string {
    return `/run/containerd/hako/${this.namespace}`;
  }

  /** The namespace's parent cgroups (containerd's cgroupsPath is /<namespace>/<id>; the runtime removes <id>). */
  removeCgroups(): void {
    for (const c of fs.readdirSync('/sys/fs/cgroup'))
      try {
        fs.rmdirSync(path.join('/sys/fs/cgroup', c, this.namespace));
      } catch {
        /* not there */
      }
  }

  /** A bundle in containerd's layout; `annotations` as containerd copies them into config.json. */
  bundle(id: string, args: string[], annotations?: Record<string, string>): string {
    const dir = path.join(this.base, this.namespace, id);
    fs.mkdirSync(path.join(dir, 'rootfs'), { recursive: true });
    const spec = defaultSpec({ args, terminal: false });
    spec.linux!.cgroupsPath = `/${this.namespace}/${id}`;
    if (annotations) spec.annotations = annotations;
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec));
    return dir;
  }

  createRequest(id: string, stdout = '', stderr = stdout): Writer {
    return new Writer()
      .string(1, id)
      .string(2, path.join(this.base, this.namespace, id))
      .message(3, new Writer().string(1, 'bind').string(2, this.lower).string(4, 'rbind').string(4, 'ro'))
      .string(6, stdout)
      .string(7, stderr);
  }

  /** `containerd-shim-hako-v2 ... start` (Node's start) in the bundle of `id`: the server's socket. */
  start(id: string, env: NodeJS.ProcessEnv = {}, address = this.address): string {
    const cwd = path.join(this.base, this.namespace, id);
    fs.writeFileSync(path.join(cwd, 'log'), ''); // the server's stderr (a FIFO under containerd)
    const e: NodeJS.ProcessEnv = { ...process.env, ...env };
    delete e.TTRPC_ADDRESS; // no containerd to publish events to
    const r = spawnSync(
      process.execPath,
      [SHIM_MAIN, '-namespace', this.namespace, '-address', address, '-id', id, 'start'],
      { cwd, env: e, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 },
    );
    assert.equal(r.status, 0, `shim start: ${r.stderr}`);
    assert.match(r.stdout, /^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
    return r.stdout.slice('unix://'.length);
  }

  /** `containerd-shim-hako-v2 ... -bundle B delete` through the launcher, as containerd runs it. */
  delete(id: string): { status: number | null; stdout: Buffer; stderr: string } {
    const bundle = path.join(this.base, this.namespace, id);
    const r = spawnSync(
      SHIM_LAUNCHER,
      ['-namespace', this.namespace, '-address', this.address, '-id', id, '-bundle', bundle, 'delete'],
      { cwd: bundle, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 },
    );
    return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
  }
}

/** A ttrpc connection to a shim, with the Task calls the tests use. */
export class TaskClient {
  private constructor(private readonly client: Client) {}

  static async connect(sock: string): Promise<TaskClient> {
    return new TaskClient(await Client.connect(sock));
  }

  call(method: string, payload: Writer): Promise<Buffer> {
    return this.client.call(TASK_SERVICE, method, payload.finish());
  }

  async shimPid(): Promise<number> {
    return new Fields(await this.call('Connect', new Writer().string(1, ''))).uint(1);
  }

  /** Create (with `request`), Start, Wait and Delete: the exit status. */
  async runToExit(id: string, request: Writer): Promise<number> {
    await this.call('Create', request);
    await this.call('Start', new Writer().string(1, id));
    const status = new Fields(await this.call('Wait', new Writer().string(1, id))).uint(1);
    await this.call('Delete', new Writer().string(1, id));
    return status;
  }

  async shutdown(): Promise<void> {
    await this.call('Shutdown', new Writer().bool(2, true)).catch(() => {});
    this.client.close();
  }

  close(): void {
    this.client.close();
  }
}

/** The processes whose parent is `pid`, with their command lines. */
export function childrenOf(pid: number): string[] {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
        return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] === String(pid);
      } catch {
        return false;
      }
    })
    .map((p) => {
      try {
        return `${p} ${fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')}`;
      } catch {
        return p;
      }
    });
}

export async function waitGone(pid: number, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (fs.existsSync(`/proc/${pid}`) && Date.now() < deadline) {
    try {
      if (fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z')) return true;
    } catch {
      return true;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return !fs.existsSync(`/proc/${pid}`);
}
