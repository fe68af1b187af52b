// How deep a JSON document hako reads may nest. The validators and JSON.stringify (of the state) recurse over
// it, so a config nested 100,000 levels deep used to end in "Maximum call stack size exceeded", naming nothing.
import { invalidField } from '../errors';

/** How deep config.json may nest. The deepest field of the runtime-spec is 7 levels down (seccomp args). */
export const MAX_CONFIG_DEPTH = 64;

/**
 * Refuse a value nested deeper than `max` levels, naming where (below `base`, the field path of `value`; the
 * whole config when empty). Iterative, so the check itself cannot overflow the stack that a recursive walk
 * (JSON.stringify of the state, the validators) would.
 */
export function checkDepth(value: unknown, max = MAX_CONFIG_DEPTH, base = ''): void {
  const stack: [unknown, number, string][] = [[value, 0, base]];
  while (stack.length) {
    const [v, depth, at] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth >= max) {
      // The path to the point of excess, cut short: the first levels say which field it is.
      const parts = at.split(/(?=[.[])/).filter(Boolean);
      const shown = parts.slice(0, 6).join('').replace(/^\./, '') + (parts.length > 6 ? '…' : '');
      throw invalidField(shown || 'config.json', `nested deeper than ${max} levels`);
    }
    if (Array.isArray(v)) v.forEach((x, i) => stack.push([x, depth + 1, `${at}[${i}]`]));
    else for (const [k, x] of Object.entries(v)) stack.push([x, depth + 1, `${at}.${k}`]);
  }
}
