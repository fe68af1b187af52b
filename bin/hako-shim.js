// The Node side of containerd-shim-hako-v2 (bin/containerd-shim-hako-v2 runs `node bin/hako-shim.js ...`). As
// bin/hako does for the CLI, it loads the shim bundled into one file (dist/shim.js, scripts/bundle-cli.ts) with
// a V8 code cache on tmpfs: a new shim is on containerd's path for every new pod or container, and reading ~50
// modules one by one and compiling them took about as long as Node's own start. Falls back to
// dist/lib/shim/main.js (a checkout's tsc output; the package ships the bundle alone) when there is no bundle.
// Not a container process: only the shim runs in this Node.
'use strict';
const fs = require('fs');
const path = require('path');

const bundle = path.join(__dirname, '..', 'dist', 'shim.js');

function inInitialUserNamespace() {
  try {
    return fs.readFileSync('/proc/self/uid_map', 'latin1').trim().split(/\s+/).join(' ') === '0 0 4294967295';
  } catch {
    return true;
  }
}

/** The cache file for this mode (the same directory rules as bin/hako and lib/runtime/cache-dir.ts). */
function cacheFile(argv) {
  const uid = process.geteuid ? process.geteuid() : 0;
  const xdg = process.env.XDG_RUNTIME_DIR;
  const hostRoot = uid === 0 && (!xdg || process.env.USER === 'root' || inInitialUserNamespace());
  const base = hostRoot ? '/run/hako-cache' : xdg ? path.join(xdg, 'hako-cache') : null;
  if (!base) return null;
  // Only a directory of our own that no one else can write: V8 trusts what it loads from here.
  try {
    let st;
    try {
      st = fs.lstatSync(base);
    } catch {
      fs.mkdirSync(base, { recursive: true, mode: 0o700 });
      st = fs.lstatSync(base);
    }
    if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) return null;
  } catch {
    return null;
  }
  const st = fs.statSync(bundle);
  // One cache per mode: each holds the functions that mode compiles. A spare (lib/shim/spare.ts) is a server to be:
  // it reads the servers' cache, with the Create they compiled, and writes none (it has compiled no Create yet).
  const mode = ['start', 'delete'].find((m) => argv.includes(m)) ?? 'serve';
  return path.join(base, `shim-${process.version}-${process.arch}-${st.size}-${Math.floor(st.mtimeMs)}-${mode}.v8`);
}

function load(argv) {
  if (!fs.existsSync(bundle)) return { shim: require('../dist/lib/shim/main.js') };
  const vm = require('vm');
  const Module = require('module');
  const file = cacheFile(argv);
  let cachedData;
  try {
    if (file) cachedData = fs.readFileSync(file);
  } catch {}
  // The bundle is pure ASCII (scripts/bundle-cli.ts): latin1 skips UTF-8 decoding.
  const script = new vm.Script(Module.wrap(fs.readFileSync(bundle, 'latin1')), { filename: bundle, cachedData });
  const m = new Module(bundle, module);
  m.filename = bundle;
  m.paths = Module._nodeModulePaths(path.dirname(bundle));
  script.runInThisContext()(m.exports, (id) => m.require(id), m, bundle, path.dirname(bundle));
  let saved = false;
  const save = () => {
    if (saved) return;
    saved = true;
    try {
      const tmp = `${file}.${process.pid}`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, file);
      // Drop caches of earlier builds of this mode.
      const suffix = file.slice(file.lastIndexOf('-'));
      for (const f of fs.readdirSync(path.dirname(file)))
        if (f.startsWith('shim-') && f.endsWith(suffix) && f !== path.basename(file))
          fs.rmSync(path.join(path.dirname(file), f), { force: true });
    } catch {}
  };
  if (file && (!cachedData || script.cachedDataRejected) && !argv.includes('spare')) {
    // Written once the mode has compiled what it uses: at exit (start, delete, a short-lived server), or after a
    // few seconds of a server that keeps running (by then it has served its first Create).
    process.once('exit', save);
    setTimeout(save, 5000).unref();
  }
  return { shim: m.exports };
}

const argv = process.argv.slice(2);
load(argv).shim.run(argv);
