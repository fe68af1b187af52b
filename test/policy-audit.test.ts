// Audit trail under load (issue 15): a per-container token bucket bounds the records of a flood, and records
// of the suppressed counts account for every decision (written + suppressed = decided).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { AuditSuppressedRecord } from '../lib/policy';
import { AuditLimiter } from '../lib/policy/audit-limit';
import { parsePolicy } from '../lib/policy';
import { disposeRoot, testRoot, uniqueId } from './helpers/env';
import { HAVE_GCC, hakoAsync, op, policyBundle, startServer, waitFor } from './policy-env';

const root = testRoot('policy-audit');
after(() => disposeRoot(root));
const skip = !HAVE_GCC ? 'gcc is needed to build the test program' : process.getuid?.() !== 0 ? 'needs root' : false;

describe('audit rate limit: the bucket', () => {
  test('burst, then rate; refusals counted and reported once, final on release', () => {
    let t = 1_000_000;
    const out: AuditSuppressedRecord[] = [];
    const lim = new AuditLimiter(() => ({ rate: 10, burst: 5, reportMs: 60_000 }), (r) => out.push(r), () => t);
    const admitted = Array.from({ length: 20 }, () => lim.admit('x')).filter(Boolean).length;
    assert.equal(admitted, 5);
    t += 1000; // one second: 10 more tokens, capped at the burst (5)
    assert.equal(Array.from({ length: 20 }, () => lim.admit('x')).filter(Boolean).length, 5);
    assert.equal(Array.from({ length: 3 }, () => lim.admit('y')).filter(Boolean).length, 3, 'containers have their own buckets');
    lim.report();
    assert.deepEqual(out.map((r) => [r.container, r.suppressed, r.final]), [['x', 30, false]]);
    lim.release('x');
    assert.equal(out.length, 1, 'nothing more to report');
    assert.equal(lim.admit('x'), true, 'a released container starts with a full bucket');
    lim.close();
  });

  test('policy syntax: defaults, a custom limit, false, and errors', () => {
    assert.deepEqual(parsePolicy('profiles: []').auditLimit, { rate: 50, burst: 200, reportMs: 10_000 });
    assert.deepEqual(parsePolicy('auditLimit: {rate: 5, burst: 7, reportSeconds: 2}\nprofiles: []').auditLimit, { rate: 5, burst: 7, reportMs: 2000 });
    assert.equal(parsePolicy('auditLimit: false\nprofiles: []').auditLimit, null);
    assert.throws(() => parsePolicy('auditLimit: {rate: 0}\nprofiles: []', 'p.yaml'), /p\.yaml:1: auditLimit\.rate: must be an integer from 1/);
    assert.throws(() => parsePolicy('auditLimit: {rat: 3}\nprofiles: []', 'p.yaml'), /auditLimit\.rat: unknown field/);
  });
});

describe('audit rate limit: a real flood', { skip }, () => {
  test('5,000 denied calls from one container: bounded records, and the suppressed counts make up the difference', async () => {
    const suppressed: AuditSuppressedRecord[] = [];
    const s = await startServer({ auditLimit: { rate: 20, burst: 100, reportSeconds: 1 }, profiles: [{ name: 'f', match: { ids: ['f-*'] } }] }, { auditSuppressed: (r) => suppressed.push(r) });
    try {
      const id = uniqueId('f');
      const b = policyBundle(['/bin/attack', 'flood', '5000', '2'], { socket: s.socket });
      const r = await hakoAsync(root, ['run', '--bundle', b.dir, id], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.err);
      const f = op(r.out, 'flood') as unknown as { n: number; ns: number; eperm: number };
      assert.equal(f.eperm, 5000, r.out);
      // The container is released once its fd reports POLLHUP: then the final count is written.
      await waitFor(() => suppressed.some((x) => x.container === id && x.final), 10_000);
      const written = s.audits.filter((x) => x.container === id).length;
      const counted = suppressed.filter((x) => x.container === id).reduce((n, x) => n + x.suppressed, 0);
      const seconds = f.ns / 1e9;
      assert.ok(written >= 100 && written <= 100 + Math.ceil(20 * (seconds + 1)) + 1, `${written} records in ${seconds.toFixed(2)} s`);
      assert.equal(written + counted, 5000, `written ${written} + suppressed ${counted} = every decision`);
      assert.ok(suppressed.filter((x) => x.container === id).every((x) => x.suppressed > 0 && x.reason.includes('20/s')));
      assert.equal(suppressed.filter((x) => x.container === id && x.final).length, 1);
    } finally {
      await s.close();
    }
  });
});
