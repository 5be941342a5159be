/**
 * The datetime text formats Celery puts on the wire.
 *
 * * Message `eta`/`expires`: Python `datetime.isoformat()` of an aware datetime, e.g.
 *   `2026-11-25T16:25:22.464174+00:00` or `2030-01-02T05:04:05+02:00` (no fraction when it is zero).
 *   A naive value (no offset) means the worker's timezone in Celery; qworker reads it as UTC unless told
 *   otherwise, which matches Celery's default `timezone = "UTC"`.
 * * Result `date_done`: naive UTC `datetime.utcnow().isoformat()`, e.g. `2026-11-25T16:25:20.394677`.
 */

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?(?:(Z|z)|([+-])(\d{2}):?(\d{2})?(?::?(\d{2})(?:\.\d+)?)?)?$/;

export type NaiveTimezone = "utc" | "local";

/**
 * Parse a Python/Celery ISO-8601 datetime into epoch milliseconds (sub-millisecond digits are truncated).
 * Returns undefined for text that is not a valid datetime.
 */
export function parseIsoDateTime(text: string, naive: NaiveTimezone = "utc"): number | undefined {
  const m = ISO_RE.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h = "0", mi = "0", s = "0", frac = "", z, sign, oh, om = "0", os = "0"] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  const ms = Number((frac + "000").slice(0, 3));
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) return undefined;
  let epoch: number;
  if (z !== undefined || sign !== undefined || naive === "utc") {
    epoch = Date.UTC(year, month - 1, day, hour, minute, second, ms);
    if (sign !== undefined) {
      const offsetMs = (Number(oh) * 3600 + Number(om) * 60 + Number(os)) * 1000;
      epoch -= sign === "-" ? -offsetMs : offsetMs;
    }
  } else {
    epoch = new Date(year, month - 1, day, hour, minute, second, ms).getTime();
  }
  // Reject dates that JavaScript silently rolled over (e.g. Feb 30).
  const check = new Date(Date.UTC(year, month - 1, day));
  if (check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return undefined;
  return Number.isFinite(epoch) ? epoch : undefined;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** `YYYY-MM-DDTHH:MM:SS.ffffff` in UTC, without offset (Celery's `date_done`). Always six fraction digits. */
export function formatNaiveUtc(epochMs: number): string {
  const d = new Date(epochMs);
  return (
    `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}` +
    `.${pad(d.getUTCMilliseconds(), 3)}000`
  );
}

/** `YYYY-MM-DDTHH:MM:SS.ffffff+00:00`: what Celery writes for `eta`/`expires` with `enable_utc`. */
export function formatAwareUtc(epochMs: number): string {
  return `${formatNaiveUtc(epochMs)}+00:00`;
}
