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
