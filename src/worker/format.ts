/** A short, one-line rendering of a value for log lines (results can be large). */
export function preview(value: unknown, max = 200): string {
  let s: string;
  try {
    s = value === undefined ? "undefined" : (JSON.stringify(value) ?? String(value));
  } catch {
    s = String(value);
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

export function ms(n: number): string {
  return n < 1000 ? `${n.toFixed(1)} ms` : `${(n / 1000).toFixed(2)} s`;
}

// Characters JSON.stringify escapes; any surrogate sends the string to JSON.stringify, which escapes lone ones.
// eslint-disable-next-line no-control-regex -- control characters are exactly what JSON escapes
const NEEDS_ESCAPE = /[\u0000-\u001f"\\\ud800-\udfff]/;

/**
 * `JSON.stringify(s)` for a string, cheaper for the usual id, name or log message that needs no escaping
 * (the per-task event and log line writers call it several times per task).
 */
export function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}
