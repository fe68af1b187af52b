// The claimer's side of lib/shim/spare-protocol.ts, in TypeScript (the native launcher has its own in C): claim
// the spare of containerd `address` for a new group. The launcher's fallback, when this gives nothing, is to start
// a server the normal way.
import * as net from 'net';
import { encodeClaim, spareSocketPath, type Claim } from './spare-protocol';

/**
 * The group's address ("unix://<claim.socket>") once a spare serves the group; undefined when no spare did (none
 * listening, another claimer won it, it failed, or no answer within `timeoutMs`).
 */
export function claimSpare(address: string, claim: Claim, timeoutMs = 10_000): Promise<string | undefined> {
  const expected = `unix://${claim.socket}`;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const conn = net.createConnection(spareSocketPath(address));
    const timer = setTimeout(() => done(undefined), timeoutMs);
    function done(answer: string | undefined): void {
      clearTimeout(timer);
      conn.destroy();
      resolve(answer);
    }
    conn.on('connect', () => conn.write(encodeClaim(claim)));
    conn.on('data', (d) => {
      chunks.push(d);
      if (Buffer.concat(chunks).length > expected.length) done(undefined);
    });
    conn.on('end', () => done(Buffer.concat(chunks).toString() === expected ? expected : undefined));
    conn.on('error', () => done(undefined));
  });
}
