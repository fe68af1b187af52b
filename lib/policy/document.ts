// Policy files, JSON or YAML, read with the `yaml` package (YAML 1.2, core schema; JSON is a subset of it). The
// parser gives every node its source range; the walk below turns the tree into plain values and remembers the line
// of every value, so schema errors can say "policy.yaml:12: profiles[0].mount[0].limits.size: ...".
// Refused with their line: anchors and aliases (a policy is read by people: a value defined elsewhere hides what a
// rule allows, and aliases can multiply a small file), explicit tags (!!binary and the like give values that are
// not JSON), multiple documents, and in a JSON file what JSON does not have (comments, block syntax, plain strings).

import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument as parseYamlDocument, visit } from 'yaml';

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

// What a JSON number looks like; YAML also reads 0x10, .inf and the like as numbers.
const JSON_LITERAL = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)$/;

/** The parts of the yaml node API the walk uses (the package's own node types are wider than needed here). */
interface Node {
  range?: [number, number, number] | null;
  tag?: string;
  anchor?: string;
  comment?: string | null;
  commentBefore?: string | null;
}

function parse(text: string, file: string, json: boolean): ParsedDocument {
  const counter = new LineCounter();
  // uniqueKeys off: the walk reports a duplicate key by name, which the package's own error does not.
  const doc = parseYamlDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: false, schema: 'core' });
  const lineAt = (offset: number) => counter.linePos(offset).line;
  const lines = new Map<string, number>();
  const fail = (offset: number, msg: string): never => {
    throw new DocumentError(file, lineAt(offset), msg);
  };

  const firstError = doc.errors[0];
  if (firstError) {
    const at = firstError.pos[0];
    let msg = firstError.message.charAt(0).toLowerCase() + firstError.message.slice(1);
    if (firstError.code === 'MULTIPLE_DOCS') msg = 'only one YAML document is allowed in a policy file';
    // An unclosed string or [ { is found where the text ends: name the line where it was opened instead.
    if (/closing|end with/.test(msg)) {
      let open = -1;
      const opened = (_key: unknown, n: Node & { flow?: boolean; type?: string | null }) => {
        const r = n.range;
        if (r && r[0] <= at && at <= r[2] && r[0] > open && (n.flow || n.type?.startsWith('QUOTE'))) open = r[0];
      };
      visit(doc, { Scalar: opened, Map: opened, Seq: opened });
      if (open >= 0) fail(open, `${msg} (opened at column ${counter.linePos(open).col})`);
    }
    fail(at, `${msg} (column ${counter.linePos(at).col})`);
  }
  const start = (n: Node | null | undefined, fallback: number) => n?.range?.[0] ?? fallback;
  if (json && (doc.commentBefore || doc.comment)) fail(0, 'comments are not allowed in JSON');

  // What every node, key or value, must not have.
  const check = (node: unknown, offset: number) => {
    const n = node as Node;
    if (isAlias(node) || n.anchor) fail(offset, 'anchors and aliases (&name, *name) are not allowed in a policy file');
    if (n.tag)
      fail(offset, `explicit tags (${n.tag.replace('tag:yaml.org,2002:', '!!')}) are not allowed in a policy file`);
    if (!json) return;
    if (n.comment || n.commentBefore) fail(offset, 'comments are not allowed in JSON');
    if (
      isScalar(node) &&
      node.type !== 'QUOTE_DOUBLE' &&
      !(node.type === 'PLAIN' && JSON_LITERAL.test(node.source ?? ''))
    ) {
      fail(offset, `not JSON: ${JSON.stringify(String(node.source ?? node.value))} (strings are double-quoted)`);
    }
    if ((isMap(node) || isSeq(node)) && !node.flow) fail(offset, 'not JSON: YAML block syntax in a JSON file');
  };

  const walk = (node: unknown, path: string, at: number): Value => {
    const offset = start(node as Node | null, at);
    if (!lines.has(path)) lines.set(path, lineAt(offset));
    if (node === null || node === undefined) return null;
    check(node, offset);
    if (isScalar(node)) {
      const v = node.value;
      if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
      return fail(offset, 'unsupported value');
    }
    if (isSeq(node)) return node.items.map((item, i) => walk(item, childPath(path, i), offset));
    if (isMap(node)) {
      const out: { [k: string]: Value } = {};
      for (const pair of node.items) {
        const keyAt = start(pair.key as Node | null, offset);
        if (!isScalar(pair.key)) return fail(keyAt, 'keys must be strings');
        check(pair.key, keyAt);
        const key = String(pair.key.value);
        if (Object.prototype.hasOwnProperty.call(out, key)) fail(keyAt, `duplicate key ${JSON.stringify(key)}`);
        const kp = childPath(path, key);
        // The key's line: where a person looks for the setting, also when its value is a block below it.
        lines.set(kp, lineAt(keyAt));
        out[key] = walk(pair.value, kp, keyAt);
      }
      return out;
    }
    return fail(offset, 'unsupported YAML node');
  };

  const value = doc.contents === null ? null : walk(doc.contents, '', 0);
  return { value, lines };
}

export function parseJson(text: string, file: string): ParsedDocument {
  return parse(text, file, true);
}

export function parseYaml(text: string, file: string): ParsedDocument {
  return parse(text, file, false);
}

/** JSON when the text starts with '{' or '[' (or the file ends in .json), else YAML. */
export function parseDocument(text: string, file: string): ParsedDocument {
  const t = text.replace(/^\uFEFF/, '');
  if (/\.json$/i.test(file) || /^\s*[{[]/.test(t)) return parseJson(t, file);
  return parseYaml(t, file);
}
