import { Chalk } from "chalk";

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARNING", 50: "ERROR", 60: "FATAL" };

/**
 * A pino destination that prints one human line per record: `[17:40:01.123] INFO  message`, coloured when
 * the terminal supports it. pino still does the level filtering and serialisation; this only re-reads its
 * JSON line, which is fine at terminal speeds. Non-TTY output stays JSON lines for log shippers.
 */
export function prettyStream(out: NodeJS.WritableStream, color: boolean): { write(line: string): void } {
  const chalk = new Chalk({ level: color ? 1 : 0 });
  const paint: Record<number, (s: string) => string> = {
    10: chalk.gray,
    20: chalk.gray,
    30: chalk.green,
    40: chalk.yellow,
    50: chalk.red,
    60: chalk.bgRed.white,
  };
  return {
    write(line: string) {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        out.write(line);
        return;
      }
      const level = Number(rec.level);
      const time = new Date(Number(rec.time)).toISOString().slice(11, 23);
      const name = (LEVEL_NAMES[level] ?? String(level)).padEnd(7);
      let text = `${chalk.dim(`[${time}]`)} ${(paint[level] ?? String)(name)} ${String(rec.msg ?? "")}`;
      // A task's `logger.info({ orderId }, "sent")` (pino's way): its fields, which this line would drop.
      const fields = Object.keys(rec).filter((k) => !OWN_KEYS.has(k));
      if (fields.length > 0) text += ` ${chalk.dim(fields.map((k) => `${k}=${fieldValue(rec[k])}`).join(" "))}`;
      const err = rec.err as { stack?: string } | undefined;
      if (err?.stack) text += `\n${chalk.dim(err.stack)}`;
      out.write(`${text}\n`);
    },
  };
}

/** What every record has, shown in the line's own places (err as its stack below). */
const OWN_KEYS = new Set(["level", "levelName", "time", "msg", "err"]);

/** A field as key=value shows it: a plain word as it is, anything else as JSON (quoted, so spaces are clear). */
function fieldValue(value: unknown): string {
  if (typeof value === "string" && /^[\w.:/@+-]+$/.test(value)) return value;
  return JSON.stringify(value) ?? String(value);
}
