/**
 * A small approximation of Python's `repr` for JSON values, used only for the display-only
 * `argsrepr`/`kwargsrepr` headers Celery tools (Flower, `celery inspect`) show. Not a serializer.
 */

/** Celery's `argsrepr_maxsize`/`kwargsrepr_maxsize`. */
export const REPR_MAX_SIZE = 1024;

function reprString(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return out + quote;
}

function reprNumber(n: number): string {
  if (Number.isNaN(n)) return "nan";
  if (!Number.isFinite(n)) return n > 0 ? "inf" : "-inf";
  return String(n);
}

export function pyRepr(value: unknown, seen: Set<unknown> = new Set()): string {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return reprNumber(value);
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "string") return reprString(value);
  if (typeof value !== "object") return reprString(String(value));
  if (seen.has(value)) return "...";
  seen.add(value);
  try {
    if (Array.isArray(value)) return `[${value.map((v) => pyRepr(v, seen)).join(", ")}]`;
    const entries = Object.entries(value as Record<string, unknown>);
    return `{${entries.map(([k, v]) => `${reprString(k)}: ${pyRepr(v, seen)}`).join(", ")}}`;
  } finally {
    seen.delete(value);
  }
}

/** Positional arguments as a Python tuple: `()`, `(2,)`, `(2, 3)`. */
export function pyReprArgs(args: readonly unknown[], maxSize = REPR_MAX_SIZE): string {
  const inner = args.map((a) => pyRepr(a)).join(", ");
  return truncate(args.length === 1 ? `(${inner},)` : `(${inner})`, maxSize);
}

export function pyReprKwargs(kwargs: Record<string, unknown>, maxSize = REPR_MAX_SIZE): string {
  return truncate(pyRepr(kwargs), maxSize);
}

function truncate(text: string, maxSize: number): string {
  return text.length > maxSize ? `${text.slice(0, maxSize)}...` : text;
}
