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
 * Logs go to stderr so stdout stays for data (ids, results, JSON). JSON lines are batched per event-loop
 * turn because the per-execution log line sits on the hot path; the pretty form is written line by line
 * because a human is reading it.
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
  const dest = new TickBatchedDestination(stream);
  // Lines of the last turn must not vanish when the process exits without calling flush().
  process.once("exit", dest.flush);
  return { logger: pino(options, dest), flush: () => dest.flush() };
}

/**
 * JSON lines logged during one turn of the event loop go out in a single write when the turn ends. The
 * per-execution lines sit on the hot path: at high throughput this is one write for dozens of lines,
 * while a quiet worker's lines (its banner included) still appear at once for `docker logs` / `tail -f`.
 * (pino's own async destination re-measured its whole pending buffer on every line: about 12 % of a busy
 * worker's CPU in the bench profile.)
 */
class TickBatchedDestination {
  private lines: string[] = [];
  private scheduled = false;

  constructor(private readonly stream: NodeJS.WritableStream) {}

  write(line: string): void {
    this.lines.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  readonly flush = (): void => {
    this.scheduled = false;
    if (this.lines.length === 0) return;
    const out = this.lines.length === 1 ? this.lines[0]! : this.lines.join("");
    this.lines = [];
    this.stream.write(out);
  };
}
