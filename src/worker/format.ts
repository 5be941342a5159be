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

/**
 * An error message for a log line: its first line, at most `max` characters, and when that is not all of
 * it, an ellipsis and the whole length. A task may throw a message of megabytes (a response body, a dump)
 * or of many lines, and the log line carried it whole; the stored result keeps the whole message.
 */
export function messagePreview(message: string, max = 300): string {
  // The first line with text: some libraries (Prisma) start their messages with a newline. Only the head
  // is searched: a message of megabytes without a newline is not scanned to its end.
  let start = 0;
  while (start < message.length && start < max && (message[start] === "\n" || message[start] === "\r" || message[start] === " ")) start++;
  const head = message.slice(start, start + max);
  const nl = head.indexOf("\n");
  if (nl === -1 && start + head.length === message.length) return start === 0 ? message : head;
  const shown = nl === -1 ? head : head.slice(0, head[nl - 1] === "\r" ? nl - 1 : nl);
  return `${shown}… (${message.length} characters)`;
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
