/**
 * How deep decoded JSON may nest. JSON.parse reads any depth, but JSON.stringify, structured clone (the
 * process pool) and String() recurse, and overflow V8's stack at about 3,000 levels: a payload nested
 * deeper decodes, then the worker cannot write it back (a retry, a re-park, a Celery result), and each
 * attempt failed with "Maximum call stack size exceeded" instead of dead-lettering it. 512 leaves that
 * headroom many times over and is far beyond real data (Python's json, which Celery producers use, stops
 * near 1,000; Ruby's JSON at 100 by default).
 */
export const MAX_JSON_DEPTH = 512;

/**
 * True when `value` nests arrays/objects more than `max` levels deep (a scalar is 0 levels, `[]` is 1).
 * Iterative and depth-first, so it stops as soon as it gets that deep: a deep input cannot overflow the
 * stack here, and a cyclic one (only possible for objects built in this process) ends as too deep.
 */
export function nestsDeeperThan(value: unknown, max = MAX_JSON_DEPTH): boolean {
  if (typeof value !== "object" || value === null) return false;
  const stack: [object, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (depth > max) return true;
    const children: unknown[] = Array.isArray(v) ? v : Object.values(v);
    for (const c of children) if (typeof c === "object" && c !== null) stack.push([c, depth + 1]);
  }
  return false;
}

/**
 * Where parsed JSON nests more than `max` levels deep, as a reason, or undefined when it does not. `text`
 * is the JSON it was parsed from, when there is one: a text shorter than two characters a level cannot
 * nest that deep, so the usual small payload is not walked at all. Names the top-level member the
 * nesting is in.
 */
export function excessiveNesting(value: unknown, text?: string, max = MAX_JSON_DEPTH): string | undefined {
  if ((text !== undefined && text.length < 2 * (max + 1)) || !nestsDeeperThan(value, max)) return undefined;
  if (typeof value === "object" && value !== null) {
    for (const [key, member] of Object.entries(value)) {
      if (nestsDeeperThan(member, max - 1)) return `${Array.isArray(value) ? `element ${key}` : JSON.stringify(key)} nests deeper than ${max} levels`;
    }
  }
  return `nests deeper than ${max} levels`;
}
