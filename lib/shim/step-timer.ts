// Under the shim's -debug: where one call spends its time, step by step, in one log line
// ("Create c1: rootfs 1.20, io 0.10, library create 12.31, oom watch 0.22 ms"), beside the call's total that
// server.ts logs. Without -debug it costs nothing but the calls.

export interface StepTimer {
  /** The step that just ended, named. */
  lap(step: string): void;
  /** Log the steps (once). */
  end(): void;
}

const none: StepTimer = { lap() {}, end() {} };

export function stepTimer(what: string, log: ((m: string) => void) | undefined): StepTimer {
  if (!log) return none;
  let t = process.hrtime.bigint();
  const steps: string[] = [];
  let ended = false;
  return {
    lap(step) {
      const now = process.hrtime.bigint();
      steps.push(`${step} ${(Number(now - t) / 1e6).toFixed(2)}`);
      t = now;
    },
    end() {
      if (ended) return;
      ended = true;
      log(`${what}: ${steps.join(', ')} ms`);
    },
  };
}
