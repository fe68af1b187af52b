// A pause point for crash tests: with HAKO_TEST_PAUSE_AT=<step> in the environment, the runtime stops at that
// step of create (printing "hako: paused at <step>" to stderr) for up to 60 s, so a test can SIGKILL it there and
// check what `delete --force` still cleans up. Steps: "cgroups" (cgroups made, no state.json yet), "joined"
// (the init is in its cgroups: with the systemd driver, its scope exists; no state.json yet).
// Reading one environment variable is all it costs when unset.
export function testPause(step: string): void {
  if (process.env.HAKO_TEST_PAUSE_AT !== step) return;
  process.stderr.write(`hako: paused at ${step}\n`);
  // A synchronous sleep: the point is that nothing else of create runs meanwhile.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
}
