// What a process's stdout path from containerd names, by its URI scheme, as containerd's runc shim reads it
// (pkg/process/io.go createIO, url.Parse of stdout): no scheme is a FIFO (or a plain file), `file://` a log file
// that gets stdout and stderr both, `binary://` a logger program; any other scheme is refused. The path is the
// URI's percent-decoded path and must be absolute: a host part (`file://log/x`, which url.Parse reads as host
// `log`, path `/x`) is refused rather than silently writing somewhere else.
import { Code, RpcError } from './ttrpc';

export type OutputTarget =
  { kind: 'path' } | { kind: 'file'; path: string } | { kind: 'binary'; uri: string; path: string; args: string[] };

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):/;

export function hasScheme(p: string): boolean {
  return SCHEME.test(p);
}

export function parseOutput(stdout: string): OutputTarget {
  const scheme = SCHEME.exec(stdout)?.[1].toLowerCase();
  if (scheme === undefined) return { kind: 'path' };
  if (scheme !== 'file' && scheme !== 'binary')
    throw new RpcError(Code.InvalidArgument, `stdout ${stdout}: unknown stdio scheme "${scheme}" (file or binary)`);
  let url: URL;
  try {
    url = new URL(stdout);
  } catch (e) {
    throw new RpcError(Code.InvalidArgument, `stdout ${stdout}: not a URI: ${(e as Error).message}`);
  }
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    throw new RpcError(Code.InvalidArgument, `stdout ${stdout}: the path is not percent-encoded correctly`);
  }
  if (url.host !== '' || !path.startsWith('/') || path.includes('\0'))
    throw new RpcError(
      Code.InvalidArgument,
      `stdout ${stdout}: ${scheme}:// needs an absolute path and no host (${scheme}:///path/to/${scheme === 'file' ? 'log' : 'logger'})`,
    );
  if (scheme === 'file') return { kind: 'file', path };
  // containerd's NewBinaryCmd: per query key, the key and its first value (Go ranges over the map in random
  // order; here it is the order of first appearance).
  const args: string[] = [];
  const seen = new Set<string>();
  for (const [k, v] of url.searchParams) {
    if (seen.has(k)) continue;
    seen.add(k);
    args.push(k, v);
  }
  return { kind: 'binary', uri: stdout, path, args };
}
