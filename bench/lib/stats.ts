/** Small, dependency-free statistics for the benchmark harness. */

export function sorted(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

/** Median; NaN for an empty list. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/**
 * Percentile with linear interpolation between closest ranks (the same definition as numpy's default
 * and Excel's PERCENTILE.INC). p in [0, 100]. NaN for an empty list.
 */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = sorted(values);
  const rank = (Math.min(100, Math.max(0, p)) / 100) * (s.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = s[lo]!;
  const b = s[hi]!;
  return a + (b - a) * (rank - lo);
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

export function max(values: readonly number[]): number {
  let m = Number.NEGATIVE_INFINITY;
  for (const v of values) if (v > m) m = v;
  return values.length === 0 ? Number.NaN : m;
}

export function min(values: readonly number[]): number {
  let m = Number.POSITIVE_INFINITY;
  for (const v of values) if (v < m) m = v;
  return values.length === 0 ? Number.NaN : m;
}

/**
 * Median of the per-run ratios a[i] / b[i] (runs paired by index: run i of both engines happened in the
 * same repetition). Pairs with a non-finite value or a zero denominator are left out.
 */
export function medianRatio(a: readonly number[], b: readonly number[]): number {
  const ratios: number[] = [];
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isFinite(x) && Number.isFinite(y) && y !== 0) ratios.push(x / y);
  }
  return median(ratios);
}

/** Format a number for a table: 3 significant digits for small values, thousands separators for big ones. */
export function fmt(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return "-";
  const abs = Math.abs(v);
  if (abs >= 1000) return Math.round(v).toLocaleString("en-US");
  if (abs >= 100) return v.toFixed(0);
  if (abs >= 10) return v.toFixed(1);
  if (abs >= 1) return v.toFixed(2);
  if (abs === 0) return "0";
  return v.toPrecision(2);
}
