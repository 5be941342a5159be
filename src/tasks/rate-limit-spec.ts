const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parse Celery's rate-limit syntax: "100/m", "10/s", "1000/h", or a bare number (per second).
 * Returns the interval between runs in ms, or undefined when the spec is not valid.
 */
export function rateLimitInterval(spec: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*([smh]))?\s*$/.exec(spec);
  if (!m) return undefined;
  const count = Number(m[1]);
  if (!(count > 0)) return undefined;
  return UNITS[m[2] ?? "s"]! / count;
}
