// The Kubernetes path of docs/kubernetes.md: a containerd whose config holds the doc's `hako` runtime
// handler (runc shim, BinaryName = hako) and the CRI plugin, driven as a kubelet drives it, over the CRI
// gRPC API (Debian 12 has no crictl), and with ctr using the same shim options.
// Needs `bash scripts/ci-clients.sh` first (images, the gRPC client packages). containerd, ctr and runc's shim are
// the first on PATH (CI: Debian's 1.6.20; `PATH=/path/to/containerd-1.7/bin:$PATH` tests another): the title names it.
import { after, before, describe, test } from 'node:test';
import * as assert from 'assert/strict';
import { spawn } from 'child_process';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as path from 'path';
import {
  assertNoLeftovers,
  callsFor,
  clientsEnv,
  containerdTool,
  globalFlag,
  hakoList,
  hostCgroupFile,
  ok,
  run,
  uniq,
  verbOf,
  waitFor,
  type RunResult,
} from './helpers';

const REPO = path.join(__dirname, '..', '..', '..');
const DOC = path.join(REPO, 'docs', 'kubernetes.md');
const PROTO = path.join(REPO, 'test', 'clients', 'cri-api.proto');
const NS = 'k8s.io'; // the CRI plugin's containerd namespace
const ROOT = `/run/containerd/runc/${NS}`;
const CGROUP_PARENT = '/kubepods/hako-e2e';
const CONTAINERD = containerdTool('containerd');

interface DocConfig {
  toml: string;
  handler: string;
  runtimeType: string;
  binaryName: string;
  runtimeClassHandler: string;
  /** §7: hako's own shim (runtime_type io.containerd.hako.v2), its handler and RuntimeClass handler. */
  shimToml: string;
  shimHandler: string;
  shimRuntimeClassHandler: string;
}

/** The TOML entry and the RuntimeClass of docs/kubernetes.md. */
function readDoc(): DocConfig {
  const md = fs.readFileSync(DOC, 'utf8');
  const blocks = [...md.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], text: m[2] }));
  const toml = blocks.find((b) => b.lang === 'toml' && b.text.includes('io.containerd.grpc.v1.cri'))?.text;
  assert.ok(toml, 'docs/kubernetes.md has the containerd (version 2) TOML entry');
  const rc = blocks.find((b) => b.lang === 'yaml' && /kind:\s*RuntimeClass/.test(b.text))?.text;
  assert.ok(rc, 'docs/kubernetes.md has a RuntimeClass');
  const handler = /containerd\.runtimes\.([\w-]+)\]/.exec(toml)?.[1];
  const runtimeType = /runtime_type\s*=\s*"([^"]+)"/.exec(toml)?.[1];
  const binaryName = /BinaryName\s*=\s*"([^"]+)"/.exec(toml)?.[1];
  const runtimeClassHandler = /^handler:\s*([\w-]+)/m.exec(rc)?.[1];
  assert.ok(handler && runtimeType && binaryName && runtimeClassHandler, `incomplete entry in ${DOC}`);
  const shimToml = blocks.find((b) => b.lang === 'toml' && b.text.includes('"io.containerd.hako.v2"'))?.text;
  const shimRc = blocks.find((b) => b.lang === 'yaml' && /kind:\s*RuntimeClass/.test(b.text) && b.text !== rc)?.text;
  assert.ok(shimToml && shimRc, 'docs/kubernetes.md has the entry and the RuntimeClass of hako’s shim');
  const shimHandler = /containerd\.runtimes\.([\w-]+)\]/.exec(shimToml)?.[1];
  const shimRuntimeClassHandler = /^handler:\s*([\w-]+)/m.exec(shimRc)?.[1];
  assert.ok(shimHandler && shimRuntimeClassHandler, `incomplete shim entry in ${DOC}`);
  return {
    toml,
    handler,
    runtimeType,
    binaryName,
    runtimeClassHandler,
    shimToml,
    shimHandler,
    shimRuntimeClassHandler,
  };
}

function hasCapSysResource(): boolean {
  const bnd = /CapBnd:\s*([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return ((BigInt(`0x${bnd}`) >> 24n) & 1n) === 1n; // CAP_SYS_RESOURCE = 24
}

// The CRI client: grpc-js + proto-loader, installed by scripts/ci-clients.sh outside the project.
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- grpc-js builds the CRI client from the .proto at run time: it has no static type
type Any = any;
let client: Any;
let grpcStatus: Record<string, number>;

function cri<T = Any>(method: string, request: object, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) =>
    client[method](request, { deadline: Date.now() + timeoutMs }, (err: Error | null, resp: T) =>
      err ? reject(err) : resolve(resp),
    ),
  );
}

let doc: DocConfig;
let dir: string;
let sock: string;
let containerd: ReturnType<typeof spawn> | undefined;
let hako: string;
const created = new Set<string>();
const pods = new Set<string>();

function ctr(args: string[], timeout = 60_000): RunResult {
  return run('ctr', ['-a', sock, '-n', NS, ...args], { timeout });
}

function podConfig(name: string) {
  const uid = uniq('uid');
  const logDir = path.join(dir, 'pods', uid);
  fs.mkdirSync(logDir, { recursive: true });
  return {
    // no hostname: the kubelet sets none for a host-network pod (runc, like hako, refuses a hostname
    // without a private UTS namespace)
    metadata: { name, uid, namespace: 'hako-e2e', attempt: 0 },
    log_directory: logDir,
    labels: { app: name },
    // hostNetwork: the pod needs no CNI plugin (Debian's containerd ships none)
    linux: {
      cgroup_parent: CGROUP_PARENT,
      security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } },
    },
  };
}

async function runPod(name: string, handler = doc.runtimeClassHandler) {
  const config = podConfig(name);
  const r = await cri<{ pod_sandbox_id: string }>('RunPodSandbox', { config, runtime_handler: handler });
  pods.add(r.pod_sandbox_id);
  created.add(r.pod_sandbox_id);
  return { id: r.pod_sandbox_id, config };
}

async function removePod(id: string): Promise<void> {
  await cri('StopPodSandbox', { pod_sandbox_id: id });
  await cri('RemovePodSandbox', { pod_sandbox_id: id });
  pods.delete(id);
}

describe(`Kubernetes path: containerd ${CONTAINERD.version} (${CONTAINERD.path}) CRI with the hako runtime handler of docs/kubernetes.md`, () => {
  before(async () => {
    const e = clientsEnv();
    hako = e.hako;
    doc = readDoc();
    dir = path.join(e.work, 'k8s');
    sock = path.join(dir, 'containerd.sock');
    fs.mkdirSync(path.join(dir, 'cni', 'conf'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'cni', 'bin'), { recursive: true });
    // The doc's entry, verbatim but for the path of hako (the logging wrapper of ci-clients.sh).
    const entry = doc.toml.replace(/BinaryName\s*=\s*"[^"]+"/, `BinaryName = "${hako}"`);
    const config = [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      '[grpc]',
      `  address = "${sock}"`,
      '[ttrpc]',
      `  address = "${sock}.ttrpc"`,
      '[plugins."io.containerd.grpc.v1.cri"]',
      '  sandbox_image = "localhost/pause:hako"',
      // The sandbox asks for oom_score_adj -998; lowering it needs CAP_SYS_RESOURCE, which CI sandboxes
      // may lack in their bounding set (runc then fails the same way as hako).
      `  restrict_oom_score_adj = ${!hasCapSysResource()}`,
      '  [plugins."io.containerd.grpc.v1.cri".cni]',
      `    bin_dir = "${dir}/cni/bin"`,
      `    conf_dir = "${dir}/cni/conf"`,
      // as in `containerd config default`: the doc's entry goes beside the default runc one
      '  [plugins."io.containerd.grpc.v1.cri".containerd]',
      '    default_runtime_name = "runc"',
      '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
      '      runtime_type = "io.containerd.runc.v2"',
      entry,
      doc.shimToml,
    ].join('\n');
    // containerd finds hako's shim on its PATH (the doc says so)
    fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
    fs.rmSync(path.join(dir, 'bin', 'containerd-shim-hako-v2'), { force: true });
    fs.symlinkSync(path.join(REPO, 'bin', 'containerd-shim-hako-v2'), path.join(dir, 'bin', 'containerd-shim-hako-v2'));
    fs.writeFileSync(path.join(dir, 'config.toml'), config + '\n');
    const log = fs.openSync(path.join(dir, 'containerd.log'), 'a');
    containerd = spawn('containerd', ['--config', path.join(dir, 'config.toml')], {
      stdio: ['ignore', log, log],
      detached: true,
      env: { ...process.env, PATH: `${path.join(dir, 'bin')}:${process.env.PATH}` },
    });
    fs.closeSync(log);
    containerd.unref();
    await waitFor(
      () => fs.existsSync(sock) && run('ctr', ['--connect-timeout', '1s', '-a', sock, 'version']).status === 0,
      30_000,
      'containerd (k8s) to answer',
    );
    // The daemon answering is the binary the title names
    const v = ok(run('ctr', ['-a', sock, 'version'])).stdout;
    assert.equal(/^Server:\s+Version:\s+(\S+)/m.exec(v)?.[1], CONTAINERD.version, v);
    for (const archive of [e.busyboxArchive, e.pauseArchive]) ok(ctr(['image', 'import', archive]));

    const req = createRequire(path.join(path.dirname(e.criClientModules), 'package.json'));
    const grpc = req('@grpc/grpc-js');
    const loader = req('@grpc/proto-loader');
    const def = loader.loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def);
    client = new pkg.runtime.v1.RuntimeService(`unix://${sock}`, grpc.credentials.createInsecure());
    grpcStatus = grpc.status;
  });

  after(async () => {
    for (const id of [...pods]) await removePod(id).catch(() => {});
    client?.close();
    try {
      await assertNoLeftovers(created, [ROOT], 10_000, true);
      assert.deepEqual(hakoList(ROOT), [], `hako --root ${ROOT} list is not empty`);
    } finally {
      if (containerd?.pid) {
        const pid = containerd.pid;
        try {
          process.kill(pid, 'SIGTERM');
          await waitFor(
            () => !fs.existsSync(`/proc/${pid}`) || fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z',
            10_000,
            'containerd (k8s) to exit',
          );
        } catch {
          /* already gone */
        }
      }
      for (const ctrl of fs.readdirSync('/sys/fs/cgroup'))
        for (const d of [CGROUP_PARENT, path.dirname(CGROUP_PARENT)])
          try {
            fs.rmdirSync(path.join('/sys/fs/cgroup', ctrl, d));
          } catch {
            /* not there, or not ours */
          }
    }
  });

  test('the RuntimeClass names the handler the containerd entry defines; containerd loads it', () => {
    assert.equal(doc.runtimeClassHandler, doc.handler);
    assert.equal(doc.runtimeType, 'io.containerd.runc.v2');
    assert.match(doc.binaryName, /^\/.*\/hako$/);
    const plugins = ok(ctr(['plugins', 'ls']));
    assert.match(plugins.stdout, /io\.containerd\.grpc\.v1\s+cri\s+\S+\s+ok/, 'the CRI plugin loaded with the entry');
    const dump = ok(run('containerd', ['--config', path.join(dir, 'config.toml'), 'config', 'dump']));
    assert.ok(
      dump.stdout.includes(`[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.${doc.handler}]`),
      'the handler is in the merged config',
    );
    assert.ok(dump.stdout.includes(`BinaryName = "${hako}"`));
  });

  test('ctr with the handler’s shim and options (runtime io.containerd.runc.v2, BinaryName)', async () => {
    const id = uniq('k-ctr');
    created.add(id);
    const r = ok(
      ctr([
        'run',
        '--rm',
        '--runtime',
        doc.runtimeType,
        '--runc-binary',
        hako,
        'localhost/busybox:latest',
        id,
        'echo',
        'ok',
      ]),
    );
    assert.equal(r.stdout.trim(), 'ok');
    const calls = callsFor(id);
    assert.deepEqual(
      calls.map((c) => verbOf(c)[0]),
      ['create', 'start', 'delete', 'delete'],
    );
    for (const c of calls) assert.equal(globalFlag(c, '--root'), ROOT);
    await assertNoLeftovers([id], [ROOT]);
  });

  test('a pod over CRI: RunPodSandbox(runtime_handler), CreateContainer, StartContainer, ExecSync, UpdateContainerResources, stop, remove', async () => {
    const v = await cri<{ runtime_name: string; runtime_api_version: string }>('Version', { version: 'v1' });
    assert.equal(v.runtime_name, 'containerd');
    assert.equal(v.runtime_api_version, 'v1');

    const pod = await runPod(uniq('pod'));
    const sandboxCreate = callsFor(pod.id).find((c) => verbOf(c)[0] === 'create');
    assert.ok(sandboxCreate, 'the sandbox ran through hako');
    assert.equal(globalFlag(sandboxCreate, '--root'), ROOT);
    assert.equal(sandboxCreate.rc, 0);
    assert.equal(
      hostCgroupFile('pids', `${CGROUP_PARENT}/${pod.id}`, 'cgroup.procs') !== undefined,
      true,
      'the sandbox is in <cgroup_parent>/<id>',
    );

    const { container_id: cid } = await cri<{ container_id: string }>('CreateContainer', {
      pod_sandbox_id: pod.id,
      config: {
        metadata: { name: 'main', attempt: 0 },
        image: { image: 'localhost/busybox:latest' },
        command: ['sh', '-c', 'echo started; exec sleep 300'],
        log_path: 'main.log',
        // what the kubelet sends for a host-network pod: own pid namespace, the pod's ipc namespace
        linux: {
          resources: { memory_limit_in_bytes: String(64 << 20) },
          security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } },
        },
      },
      sandbox_config: pod.config,
    });
    created.add(cid);
    await cri('StartContainer', { container_id: cid });
    const st = await cri<{ status: { state: string } }>('ContainerStatus', { container_id: cid });
    assert.equal(st.status.state, 'CONTAINER_RUNNING');

    const ex = await cri<{ stdout: Buffer; stderr: Buffer; exit_code: number }>('ExecSync', {
      container_id: cid,
      cmd: ['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /proc/1/cmdline | tr "\\0" " "'],
      timeout: 20,
    });
    assert.equal(ex.exit_code, 0, ex.stderr.toString());
    const [limit, cmdline] = ex.stdout.toString().trim().split('\n');
    assert.equal(limit, String(64 << 20), 'the pod’s memory limit, seen in the container');
    assert.equal(cmdline.trim(), 'sleep 300');
    const bad = await cri<{ exit_code: number }>('ExecSync', {
      container_id: cid,
      cmd: ['sh', '-c', 'exit 3'],
      timeout: 20,
    });
    assert.equal(bad.exit_code, 3);
    assert.ok(
      callsFor(cid).some((c) => verbOf(c)[0] === 'exec'),
      'ExecSync ran hako exec',
    );

    // in-place resize
    await cri('UpdateContainerResources', { container_id: cid, linux: { memory_limit_in_bytes: String(128 << 20) } });
    const upd = callsFor(cid).filter((c) => verbOf(c)[0] === 'update');
    assert.deepEqual(
      upd.map((c) => [verbOf(c).join(' '), c.rc]),
      [[`update --resources - ${cid}`, 0]],
    );
    assert.equal(hostCgroupFile('memory', `${CGROUP_PARENT}/${cid}`, 'memory.limit_in_bytes'), String(128 << 20));

    // the container's log, written by the shim from the container's stdout
    const logFile = path.join(pod.config.log_directory, 'main.log');
    assert.match(fs.readFileSync(logFile, 'utf8'), /stdout F started/);

    // StopContainer: sleep as pid 1 ignores SIGTERM; after the timeout containerd sends SIGKILL
    await cri('StopContainer', { container_id: cid, timeout: 1 });
    const stopped = await cri<{ status: { state: string; exit_code: number } }>('ContainerStatus', {
      container_id: cid,
    });
    assert.equal(stopped.status.state, 'CONTAINER_EXITED');
    assert.equal(stopped.status.exit_code, 137);
    const kills = callsFor(cid)
      .filter((c) => verbOf(c)[0] === 'kill')
      .map((c) => verbOf(c).slice(1).join(' '));
    assert.deepEqual(kills.slice(0, 2), [`${cid} 15`, `${cid} 9`]);
    await cri('RemoveContainer', { container_id: cid });
    await removePod(pod.id);
    await assertNoLeftovers([pod.id, cid], [ROOT]);
  });

  test('a pod through hako’s shim (RuntimeClass of docs §7): one shim for the pod, ExecSync, update, stop, remove', async () => {
    assert.equal(doc.shimRuntimeClassHandler, doc.shimHandler);
    const SHIM_ROOT = `/run/containerd/hako/${NS}`;
    const pod = await runPod(uniq('pod-shim'), doc.shimRuntimeClassHandler);
    assert.deepEqual(callsFor(pod.id), [], 'the sandbox did not go through hako’s CLI');
    assert.ok(fs.existsSync(path.join(SHIM_ROOT, pod.id)), 'the sandbox is in the shim’s state root');
    const { container_id: cid } = await cri<{ container_id: string }>('CreateContainer', {
      pod_sandbox_id: pod.id,
      config: {
        metadata: { name: 'main', attempt: 0 },
        image: { image: 'localhost/busybox:latest' },
        command: ['sh', '-c', 'echo started; exec sleep 300'],
        log_path: 'main.log',
        linux: {
          resources: { memory_limit_in_bytes: String(64 << 20) },
          security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } },
        },
      },
      sandbox_config: pod.config,
    });
    created.add(cid);
    await cri('StartContainer', { container_id: cid });
    const st = await cri<{ status: { state: string } }>('ContainerStatus', { container_id: cid });
    assert.equal(st.status.state, 'CONTAINER_RUNNING');
    // one shim for the pod: the sandbox's and the container's bundles name the same address
    const address = (id: string) =>
      fs.readFileSync(path.join(dir, 'state', 'io.containerd.runtime.v2.task', NS, id, 'address'), 'utf8');
    assert.equal(address(cid), address(pod.id));
    const ex = await cri<{ stdout: Buffer; stderr: Buffer; exit_code: number }>('ExecSync', {
      container_id: cid,
      cmd: ['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes; cat /proc/1/cmdline | tr "\\0" " "'],
      timeout: 20,
    });
    assert.equal(ex.exit_code, 0, ex.stderr.toString());
    const [limit, cmdline] = ex.stdout.toString().trim().split('\n');
    assert.equal(limit, String(64 << 20));
    assert.equal(cmdline.trim(), 'sleep 300');
    const bad = await cri<{ exit_code: number }>('ExecSync', {
      container_id: cid,
      cmd: ['sh', '-c', 'exit 3'],
      timeout: 20,
    });
    assert.equal(bad.exit_code, 3);
    await cri('UpdateContainerResources', { container_id: cid, linux: { memory_limit_in_bytes: String(128 << 20) } });
    assert.equal(hostCgroupFile('memory', `${CGROUP_PARENT}/${cid}`, 'memory.limit_in_bytes'), String(128 << 20));
    assert.match(fs.readFileSync(path.join(pod.config.log_directory, 'main.log'), 'utf8'), /stdout F started/);
    await cri('StopContainer', { container_id: cid, timeout: 1 });
    const stopped = await cri<{ status: { state: string; exit_code: number } }>('ContainerStatus', {
      container_id: cid,
    });
    assert.equal(stopped.status.state, 'CONTAINER_EXITED');
    assert.equal(stopped.status.exit_code, 137);
    await cri('RemoveContainer', { container_id: cid });
    await removePod(pod.id);
    await waitFor(
      () => !fs.existsSync(SHIM_ROOT) || fs.readdirSync(SHIM_ROOT).length === 0,
      10_000,
      `${SHIM_ROOT} to be empty`,
    );
    assert.equal(
      hostCgroupFile('pids', `${CGROUP_PARENT}/${cid}`, 'cgroup.procs'),
      undefined,
      'the container’s cgroup is gone',
    );
  });

  test("a container whose command does not exist: CRI reports hako's own message", async () => {
    const pod = await runPod(uniq('pod-enoent'));
    const { container_id: cid } = await cri<{ container_id: string }>('CreateContainer', {
      pod_sandbox_id: pod.id,
      config: {
        metadata: { name: 'broken', attempt: 0 },
        image: { image: 'localhost/busybox:latest' },
        command: ['no-such-command'],
        log_path: 'broken.log',
      },
      sandbox_config: pod.config,
    });
    created.add(cid);
    const err = await cri('StartContainer', { container_id: cid }).then(
      () => assert.fail('StartContainer succeeded'),
      (e: { code: number; details: string }) => e,
    );
    assert.equal(err.code, grpcStatus.UNKNOWN, err.details);
    assert.match(err.details, /OCI runtime create failed: .*executable file not found in \$PATH/, err.details);
    assert.match(err.details, /no-such-command/);
    await cri('RemoveContainer', { container_id: cid });
    await removePod(pod.id);
    await assertNoLeftovers([pod.id, cid], [ROOT]);
  });
});
