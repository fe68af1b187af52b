// Policy files: JSON, or the small YAML subset people write by hand (block mappings and sequences,
// plain/quoted scalars, flow [..] and {..} on one line, comments). Both parsers remember the line of every
// value, so schema errors can say "policy.yaml:12: profiles[0].mount[0].limits.size: ...".
// Anything outside the subset (anchors, tags, multi-line scalars) is an error naming its line.

export type Value = null | boolean | number | string | Value[] | { [k: string]: Value };

export interface ParsedDocument {
  value: Value;
  /** JSON path ("profiles[0].mount[1].types") -> 1-based line. */
  lines: Map<string, number>;
}

export class DocumentError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
    this.name = 'DocumentError';
  }
}

function childPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  const k = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
  return base ? `${base}.${k}` : k;
}

// ---------------------------------------------------------------- JSON

export function parseJson(text: string, file: string): ParsedDocument {
  const lines = new Map<string, number>();
  let pos = 0;
  let line = 1;
  const fail = (msg: string): never => {
    throw new DocumentError(file, line, msg);
  };
  const ws = () => {
    while (pos < text.length) {
      const c = text[pos];
      if (c === '\n') line++;
      else if (c !== ' ' && c !== '\t' && c !== '\r') break;
      pos++;
    }
  };
  const str = (): string => {
    const start = pos;
    pos++;
    let out = '';
    while (pos < text.length) {
      const c = text[pos];
      if (c === '"') {
        pos++;
        return out;
      }
      if (c === '\n') fail('unterminated string');
      if (c === '\\') {
        const e = text[pos + 1];
        const map: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e in map) {
          out += map[e];
          pos += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(pos + 2, pos + 6))) {
          out += String.fromCharCode(parseInt(text.slice(pos + 2, pos + 6), 16));
          pos += 6;
        } else {
          fail(`invalid escape in string starting at column ${start}`);
        }
        continue;
      }
      out += c;
      pos++;
    }
    return fail('unterminated string');
  };
  const value = (p: string): Value => {
    ws();
    lines.set(p, line);
    const c = text[pos];
    if (c === '{') {
      pos++;
      const o: { [k: string]: Value } = {};
      ws();
      if (text[pos] === '}') {
        pos++;
        return o;
      }
      for (;;) {
        ws();
        if (text[pos] !== '"') fail('expected a "key" in object');
        const keyLine = line;
        const k = str();
        if (Object.prototype.hasOwnProperty.call(o, k)) fail(`duplicate key ${JSON.stringify(k)}`);
        ws();
        if (text[pos] !== ':') fail(`expected ':' after key ${JSON.stringify(k)}`);
        pos++;
        const cp = childPath(p, k);
        o[k] = value(cp);
        if (lines.get(cp)! < keyLine) lines.set(cp, keyLine);
        ws();
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        if (text[pos] === '}') {
          pos++;
          return o;
        }
        fail("expected ',' or '}' in object");
      }
    }
    if (c === '[') {
      pos++;
      const a: Value[] = [];
      ws();
      if (text[pos] === ']') {
        pos++;
        return a;
      }
      for (;;) {
        a.push(value(childPath(p, a.length)));
        ws();
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        if (text[pos] === ']') {
          pos++;
          return a;
        }
        fail("expected ',' or ']' in array");
      }
    }
    if (c === '"') return str();
    const m = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(pos, pos + 64));
    if (!m) return fail(pos >= text.length ? 'unexpected end of document' : `unexpected ${JSON.stringify(text[pos])}`);
    pos += m[0].length;
    return m[0] === 'true' ? true : m[0] === 'false' ? false : m[0] === 'null' ? null : Number(m[0]);
  };
  const v = value('');
  ws();
  if (pos < text.length) fail('unexpected text after the document');
  return { value: v, lines };
}

// ---------------------------------------------------------------- YAML subset

interface YLine {
  n: number;
  indent: number;
  text: string;
}

/** Strip a comment that starts outside quotes. */
function stripComment(s: string): string {
  let q: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (c === q) {
        if (q === "'" && s[i + 1] === "'") i++;
        else q = null;
      } else if (c === '\\' && q === '"') i++;
    } else if (c === '"' || c === "'") {
      if (i === 0 || /[\s[{,:-]/.test(s[i - 1])) q = c;
    } else if (c === '#' && (i === 0 || /\s/.test(s[i - 1]))) {
      return s.slice(0, i);
    }
  }
  return s;
}

/** Index of the ':' that separates a key from its value (outside quotes and brackets), or -1. */
function keySeparator(s: string): number {
  let q: string | null = null;
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (q) {
      if (c === q) {
        if (q === "'" && s[i + 1] === "'") i++;
        else q = null;
      } else if (c === '\\' && q === '"') i++;
    } else if ((c === '"' || c === "'") && i === 0) {
      q = c;
    } else if (c === '[' || c === '{') {
      if (i === 0) return -1; // a flow collection, not a key
      depth++;
    } else if (c === ']' || c === '}') {
      depth--;
    } else if (c === ':' && depth === 0 && (i + 1 === s.length || s[i + 1] === ' ')) {
      return i;
    }
  }
  return -1;
}

export function parseYaml(text: string, file: string): ParsedDocument {
  const lines = new Map<string, number>();
  const src: YLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const n = i + 1;
    const noCr = raw.replace(/\r$/, '');
    if (/^\s*\t/.test(noCr) && noCr.trim()) throw new DocumentError(file, n, 'tabs are not allowed for indentation');
    const t = stripComment(noCr).replace(/\s+$/, '');
    if (!t.trim()) return;
    if (i === 0 || src.length === 0) {
      if (t === '---') return;
    }
    if (t === '...' || t === '---') throw new DocumentError(file, n, 'only one YAML document is supported');
    const indent = t.length - t.trimStart().length;
    src.push({ n, indent, text: t.trimStart() });
  });
  let i = 0;
  const fail = (n: number, msg: string): never => {
    throw new DocumentError(file, n, msg);
  };

  const scalar = (s: string, n: number): Value => {
    if (s.startsWith('"')) {
      let out = '';
      let k = 1;
      for (; k < s.length && s[k] !== '"'; k++) {
        if (s[k] === '\\') {
          const e = s[++k];
          const map: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', n: '\n', t: '\t', r: '\r', '0': '\0' };
          if (e in map) out += map[e];
          else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(k + 1, k + 3))) {
            out += String.fromCharCode(parseInt(s.slice(k + 1, k + 3), 16));
            k += 2;
          } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(s.slice(k + 1, k + 5))) {
            out += String.fromCharCode(parseInt(s.slice(k + 1, k + 5), 16));
            k += 4;
          } else fail(n, `unsupported escape \\${e}`);
        } else out += s[k];
      }
      if (k >= s.length) fail(n, 'unterminated double-quoted string');
      if (s.slice(k + 1).trim()) fail(n, `unexpected text after string: ${s.slice(k + 1).trim()}`);
      return out;
    }
    if (s.startsWith("'")) {
      let out = '';
      let k = 1;
      for (; k < s.length; k++) {
        if (s[k] === "'") {
          if (s[k + 1] === "'") {
            out += "'";
            k++;
          } else break;
        } else out += s[k];
      }
      if (k >= s.length) fail(n, 'unterminated single-quoted string');
      if (s.slice(k + 1).trim()) fail(n, `unexpected text after string: ${s.slice(k + 1).trim()}`);
      return out;
    }
    if (/^[&*!|>%@`]/.test(s)) fail(n, `unsupported YAML feature (${s[0]}): use plain or quoted scalars`);
    if (s === 'true' || s === 'True' || s === 'TRUE') return true;
    if (s === 'false' || s === 'False' || s === 'FALSE') return false;
    if (s === 'null' || s === '~' || s === 'Null' || s === 'NULL') return null;
    if (/^[-+]?(0|[1-9][0-9]*)$/.test(s)) return Number(s);
    if (/^0x[0-9a-fA-F]+$/.test(s)) return Number(s);
    if (/^0o[0-7]+$/.test(s)) return parseInt(s.slice(2), 8);
    if (/^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$/.test(s)) return Number(s);
    return s;
  };

  // Flow collections on one line: [a, "b", {k: v}].
  const flow = (s: string, n: number, p: string): Value => {
    let k = 0;
    const skip = () => {
      while (k < s.length && s[k] === ' ') k++;
    };
    const item = (ip: string): Value => {
      skip();
      lines.set(ip, n);
      if (s[k] === '[') {
        k++;
        const a: Value[] = [];
        skip();
        if (s[k] === ']') {
          k++;
          return a;
        }
        for (;;) {
          a.push(item(childPath(ip, a.length)));
          skip();
          if (s[k] === ',') {
            k++;
            continue;
          }
          if (s[k] === ']') {
            k++;
            return a;
          }
          return fail(n, "expected ',' or ']' in a flow sequence");
        }
      }
      if (s[k] === '{') {
        k++;
        const o: { [key: string]: Value } = {};
        skip();
        if (s[k] === '}') {
          k++;
          return o;
        }
        for (;;) {
          skip();
          const rest = s.slice(k);
          const m = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^:,{}[\]]+?)\s*:\s*/.exec(rest);
          if (!m) return fail(n, 'expected key: value in a flow mapping');
          const key = String(scalar(m[1].trim(), n));
          if (Object.prototype.hasOwnProperty.call(o, key)) fail(n, `duplicate key ${JSON.stringify(key)}`);
          k += m[0].length;
          o[key] = item(childPath(ip, key));
          skip();
          if (s[k] === ',') {
            k++;
            continue;
          }
          if (s[k] === '}') {
            k++;
            return o;
          }
          return fail(n, "expected ',' or '}' in a flow mapping");
        }
      }
      // A scalar up to the next , ] or } outside quotes.
      let e = k;
      if (s[k] === '"' || s[k] === "'") {
        const q = s[k];
        e = k + 1;
        while (e < s.length && !(s[e] === q && (q !== "'" || s[e + 1] !== "'"))) e += s[e] === '\\' && q === '"' ? 2 : s[e] === "'" && s[e + 1] === "'" ? 2 : 1;
        e++;
      } else {
        while (e < s.length && !/[,\]}]/.test(s[e])) e++;
      }
      const v = scalar(s.slice(k, e).trim(), n);
      k = e;
      return v;
    };
    const v = item(p);
    skip();
    if (k < s.length) fail(n, `unexpected text after a flow collection: ${s.slice(k)}`);
    return v;
  };

  const inline = (s: string, n: number, p: string): Value => {
    lines.set(p, n);
    if (s.startsWith('[') || s.startsWith('{')) return flow(s, n, p);
    if (s === '|' || s === '>' || /^[|>][-+0-9]*$/.test(s)) fail(n, 'block scalars (| and >) are not supported: quote the string');
    return scalar(s, n);
  };

  const isSeqItem = (t: string) => t === '-' || t.startsWith('- ');

  const block = (indent: number, p: string): Value => {
    const first = src[i];
    lines.set(p, first.n);
    return isSeqItem(first.text) ? seq(first.indent, p) : map(first.indent, p);
  };

  const seq = (indent: number, p: string): Value[] => {
    const out: Value[] = [];
    while (i < src.length && src[i].indent === indent && isSeqItem(src[i].text)) {
      const l = src[i];
      const ip = childPath(p, out.length);
      const rest = l.text.slice(1).trimStart();
      lines.set(ip, l.n);
      if (!rest) {
        i++;
        if (i < src.length && src[i].indent > indent) out.push(block(src[i].indent, ip));
        else out.push(null);
        continue;
      }
      if (keySeparator(rest) > 0 || isSeqItem(rest)) {
        // "- key: value": a mapping (or nested sequence) whose first line starts after the dash.
        src[i] = { n: l.n, indent: l.indent + (l.text.length - rest.length), text: rest };
        out.push(block(src[i].indent, ip));
        continue;
      }
      out.push(inline(rest, l.n, ip));
      i++;
    }
    if (i < src.length && src[i].indent > indent) fail(src[i].n, 'bad indentation');
    return out;
  };

  const map = (indent: number, p: string): { [k: string]: Value } => {
    const out: { [k: string]: Value } = {};
    while (i < src.length && src[i].indent === indent && !isSeqItem(src[i].text)) {
      const l = src[i];
      const sep = keySeparator(l.text);
      if (sep <= 0) fail(l.n, `expected "key: value", got ${JSON.stringify(l.text)}`);
      const rawKey = l.text.slice(0, sep).trim();
      const key = String(scalar(rawKey, l.n));
      if (Object.prototype.hasOwnProperty.call(out, key)) fail(l.n, `duplicate key ${JSON.stringify(key)}`);
      const kp = childPath(p, key);
      const rest = l.text.slice(sep + 1).trim();
      i++;
      if (rest) {
        out[key] = inline(rest, l.n, kp);
      } else if (i < src.length && src[i].indent > indent) {
        out[key] = block(src[i].indent, kp);
        lines.set(kp, l.n);
      } else if (i < src.length && src[i].indent === indent && isSeqItem(src[i].text)) {
        out[key] = seq(indent, kp); // a sequence at the key's own indentation
        lines.set(kp, l.n);
      } else {
        out[key] = null;
        lines.set(kp, l.n);
      }
    }
    if (i < src.length && src[i].indent > indent) fail(src[i].n, 'bad indentation');
    return out;
  };

  if (src.length === 0) return { value: null, lines };
  const value = block(src[0].indent, '');
  if (i < src.length) fail(src[i].n, 'bad indentation (less indented than the document start)');
  return { value, lines };
}

/** JSON when the text starts with '{' (or the file ends in .json), else the YAML subset. */
export function parseDocument(text: string, file: string): ParsedDocument {
  const t = text.replace(/^\uFEFF/, '');
  if (/\.json$/i.test(file) || /^\s*[{[]/.test(t)) return parseJson(t, file);
  return parseYaml(t, file);
}
