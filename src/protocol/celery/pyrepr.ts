/**
 * A small approximation of Celery's `saferepr` (celery/utils/saferepr.py) for JSON values, used only for the display-only
 * `argsrepr`/`kwargsrepr` headers Celery tools (Flower, `celery inspect`) show. Not a serializer.
 */

/** Celery's `argsrepr_maxsize`/`kwargsrepr_maxsize`. */
export const REPR_MAX_SIZE = 1024;

/** Celery's saferepr quotes every string with single quotes and escapes only the quote itself. */
function reprString(s: string): string {
  return `'${s.replace(/'/g, "\\'")}'`;
}

function reprNumber(n: number): string {
  if (Number.isNaN(n)) return "nan";
  if (!Number.isFinite(n)) return n > 0 ? "inf" : "-inf";
  return String(n);
}

/** Containers nested this deep are shown as `[...]`/`{...}` (saferepr's `maxlevels`). */
export const REPR_MAX_LEVELS = 3;

export function pyRepr(value: unknown, level = 0, seen: Set<unknown> = new Set()): string {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return reprNumber(value);
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "string") return reprString(value);
  if (typeof value !== "object") return reprString(String(value));
  if (level >= REPR_MAX_LEVELS) return Array.isArray(value) ? "[...]" : "{...}";
  if (seen.has(value)) return "...";
  seen.add(value);
  try {
    if (Array.isArray(value)) return `[${value.map((v) => pyRepr(v, level + 1, seen)).join(", ")}]`;
    const entries = Object.entries(value as Record<string, unknown>);
    return `{${entries.map(([k, v]) => `${reprString(k)}: ${pyRepr(v, level + 1, seen)}`).join(", ")}}`;
  } finally {
    seen.delete(value);
  }
}

/** Positional arguments as a Python tuple: `()`, `(2,)`, `(2, 3)`. */
export function pyReprArgs(args: readonly unknown[], maxSize = REPR_MAX_SIZE): string {
  const inner = args.map((a) => pyRepr(a, 1)).join(", ");
  return truncate(args.length === 1 ? `(${inner},)` : `(${inner})`, maxSize);
}

export function pyReprKwargs(kwargs: Record<string, unknown>, maxSize = REPR_MAX_SIZE): string {
  return truncate(pyRepr(kwargs), maxSize);
}

function truncate(text: string, maxSize: number): string {
  return text.length > maxSize ? `${text.slice(0, maxSize)}...` : text;
}
