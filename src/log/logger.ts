import pino, { type Logger } from "pino";
import { prettyStream } from "./pretty.ts";

export type LogLevel = "debug" | "info" | "warning" | "error";
export type LogFormat = "auto" | "pretty" | "json";

/** qworker speaks Celery's level names; pino calls "warning" "warn". */
function pinoLevel(level: LogLevel): pino.Level {
  return level === "warning" ? "warn" : level;
}

export interface LoggerHandle {
  logger: Logger;
  /** Write out anything buffered (call before exit). */
  flush(): void;
}

/**
 * Logs go to stderr so stdout stays for data (ids, results, JSON). JSON lines are written asynchronously
 * (coalesced while a write is in flight) because the per-execution log line sits on the hot path; the pretty
 * form is synchronous because a human is reading it.
 */
export function createLogger(level: LogLevel, format: LogFormat = "auto", stream: NodeJS.WriteStream = process.stderr): LoggerHandle {
  const pretty = format === "pretty" || (format === "auto" && stream.isTTY === true);
  const options: pino.LoggerOptions = {
    level: pinoLevel(level),
    base: undefined,
    formatters: { level: (label, number) => ({ level: number, levelName: label === "warn" ? "warning" : label }) },
  };
  if (pretty) {
    const color = stream.isTTY === true && !process.env.NO_COLOR;
    return { logger: pino(options, prettyStream(stream, color)), flush: () => {} };
  }
  // No minLength: with it, a quiet worker's lines (banner included) sat in the buffer until 4 KiB piled up,
  // so `docker logs` and `tail -f` showed nothing. Async writes still coalesce while one is in flight.
  const dest = pino.destination({ dest: stream === process.stdout ? 1 : 2, sync: false });
  const logger = pino(options, dest);
  return {
    logger,
    flush: () => {
      try {
        dest.flushSync();
      } catch {
        // Nothing buffered yet, or the fd is already closed.
      }
    },
  };
}
