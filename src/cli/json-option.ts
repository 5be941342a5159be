import { UsageError } from "../errors.ts";

/** Parse a JSON command-line option, with an error that says which option and what was expected. */
export function parseJsonOption<T extends "array" | "object">(raw: string, option: string, kind: T): T extends "array" ? unknown[] : Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new UsageError(`${option} is not valid JSON (${(err as Error).message}); example: ${kind === "array" ? `${option} '[1234, "x"]'` : `${option} '{"key": 1}'`}`);
  }
  const ok = kind === "array" ? Array.isArray(value) : typeof value === "object" && value !== null && !Array.isArray(value);
  if (!ok) throw new UsageError(`${option} must be a JSON ${kind}, found ${JSON.stringify(value)}`);
  return value as T extends "array" ? unknown[] : Record<string, unknown>;
}

interface NumberRange {
  integer?: boolean;
  min?: number;
  /** Exclusive lower bound (instead of min). */
  above?: number;
  max?: number;
}

function rangeText(r: NumberRange): string {
  if (r.above !== undefined) return r.max !== undefined ? ` above ${r.above} and at most ${r.max}` : ` above ${r.above}`;
  if (r.min !== undefined) return r.max !== undefined ? ` from ${r.min} to ${r.max}` : ` >= ${r.min}`;
  return r.max !== undefined ? ` at most ${r.max}` : "";
}

export function parseNumberOption(raw: string, option: string, opts: NumberRange = {}): number {
  const n = Number(raw);
  const low = opts.above !== undefined ? n <= opts.above : opts.min !== undefined && n < opts.min;
  if (raw.trim() === "" || !Number.isFinite(n) || (opts.integer && !Number.isInteger(n)) || low || (opts.max !== undefined && n > opts.max)) {
    throw new UsageError(`${option} expects ${opts.integer ? "an integer" : "a number"}${rangeText(opts)}, found "${raw}"`);
  }
  return n;
}

/** `--eta`: a date. A bare number is refused (Date.parse reads "300" as the year 300); --countdown is for delays. */
export function parseEtaOption(raw: string): string {
  if (/^\s*[\d.]+\s*$/.test(raw)) throw new UsageError(`--eta takes a date such as 2030-01-01T12:00:00Z, found ${raw}: for a delay in seconds use --countdown`);
  if (!Number.isFinite(Date.parse(raw))) throw new UsageError(`--eta expects a date such as 2030-01-01T12:00:00Z, found "${raw}"`);
  return raw;
}

/** `--expires`: seconds from now (a number >= 0) or a date. */
export function parseExpiresOption(raw: string): number | string {
  if (/^\s*[-+]?[\d.]+\s*$/.test(raw)) return parseNumberOption(raw, "--expires", { min: 0 });
  if (!Number.isFinite(Date.parse(raw))) throw new UsageError(`--expires expects seconds from now (e.g. 300) or a date such as 2030-01-01T12:00:00Z, found "${raw}"`);
  return raw;
}

/**
 * The required argument of a command that also has `--wait [seconds]`: `send --wait demo.add` gives the
 * name to --wait as its seconds, and commander would only say the argument is missing. Say why.
 */
export function requiredBesideWait(value: string | undefined, wait: string | boolean | undefined, what: string, example: string): string {
  if (value !== undefined) return value;
  if (typeof wait === "string" && !Number.isFinite(Number(wait))) {
    throw new UsageError(`missing the ${what}: --wait took "${wait}" as its seconds; put --wait after the ${what} (${example})`);
  }
  throw new UsageError(`missing the ${what} (${example})`);
}
