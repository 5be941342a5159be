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

export function parseNumberOption(raw: string, option: string, opts: { integer?: boolean; min?: number; max?: number } = {}): number {
  const n = Number(raw);
  if (raw.trim() === "" || !Number.isFinite(n) || (opts.integer && !Number.isInteger(n)) || (opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
    const range = opts.min !== undefined && opts.max !== undefined ? ` from ${opts.min} to ${opts.max}` : opts.min !== undefined ? ` >= ${opts.min}` : "";
    throw new UsageError(`${option} expects ${opts.integer ? "an integer" : "a number"}${range}, found "${raw}"`);
  }
  return n;
}
