// NODE_OPTIONS=--require for the sanitizer job (scripts/sanitize.sh): LD_PRELOAD=libasan is for node processes
// only (the sanitized addon needs the ASan runtime loaded first). Every other program a test or the runtime
// starts (ps, newuidmap, mount, runc, hooks, the policy helper) must not inherit it: uninstrumented tools under a
// preloaded ASan misbehave (procps `ps` hangs), and the helpers bring their own. Both spawn paths of Node
// (async and sync) end in these two bindings, whichever child_process function was called.
'use strict';
const path = require('path');

const isNode = (file) => file === process.execPath || path.basename(String(file)) === 'node';
/** node itself, or a wrapper that runs node (setpriv, unshare, timeout ... node): those keep it. */
const runsNode = (options) =>
  isNode(options.file) || (Array.isArray(options.args) && options.args.some((a) => isNode(a)));
function strip(options) {
  if (options && !runsNode(options) && Array.isArray(options.envPairs))
    options.envPairs = options.envPairs.filter((e) => !String(e).startsWith('LD_PRELOAD='));
}

const spawnSync = process.binding('spawn_sync');
const syncSpawn = spawnSync.spawn;
spawnSync.spawn = function (options) {
  strip(options);
  return syncSpawn.call(this, options);
};
const { Process } = process.binding('process_wrap');
const asyncSpawn = Process.prototype.spawn;
Process.prototype.spawn = function (options) {
  strip(options);
  return asyncSpawn.call(this, options);
};
