import pino, { type Logger } from "pino";
import { jsonString } from "../worker/format.ts";
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
    formatters: { level: levelFields },
  };
  if (pretty) {
    const color = stream.isTTY === true && !process.env.NO_COLOR;
    return { logger: pino(options, prettyStream(stream, color)), flush: () => {} };
  }
  const dest = new TickBatchedDestination(stream);
  // Lines of the last turn must not vanish when the process exits without calling flush().
  process.once("exit", dest.flush);
  const logger = pino(options, dest);
  writePlainLinesDirectly(logger, dest);
  return { logger, flush: () => dest.flush() };
}

function levelFields(label: string, number: number): { level: number; levelName: string } {
  return { level: number, levelName: label === "warn" ? "warning" : label };
}

const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"] as const;

/**
 * A worker logs a few lines per task, each a plain message (`logger.info("task …[id] received")`), and pino
 * spends more on such a line than the task itself costs: rest arguments, format(), an empty bindings
 * object, the key loop. For exactly that call (one string argument, on this logger, not a child) the line
 * pino would produce, `{"level":30,"levelName":"info","time":…,"msg":"…"}`, is written directly; any other
 * call goes to pino. Changing the level later makes pino reinstall its own methods, which stays correct.
 */
function writePlainLinesDirectly(logger: Logger, dest: TickBatchedDestination): void {
  for (const label of LEVELS) {
    if (!logger.isLevelEnabled(label)) continue;
    const viaPino = logger[label] as (...args: unknown[]) => void;
    // What pino puts before the time for this level (its genLsCache), then its epoch time key.
    const head = `${JSON.stringify(levelFields(label, logger.levels.values[label]!)).slice(0, -1)},"time":`;
    logger[label] = function (this: Logger, msg: unknown, ...more: unknown[]): void {
      if (this === logger && more.length === 0 && typeof msg === "string") {
        dest.write(`${head}${Date.now()},"msg":${jsonString(msg)}}\n`);
      } else {
        viaPino.call(this, msg, ...more);
      }
    } as Logger[typeof label];
  }
}

/**
 * JSON lines logged during one turn of the event loop go out in a single write when the turn ends. The
 * per-execution lines sit on the hot path: at high throughput this is one write for dozens of lines,
 * while a quiet worker's lines (its banner included) still appear at once for `docker logs` / `tail -f`.
 * (pino's own async destination re-measured its whole pending buffer on every line: about 12 % of a busy
 * worker's CPU in the bench profile.)
 */
const CHUNK_CHARS = 32 * 1024;

class TickBatchedDestination {
  private lines: string[] = [];
  private chars = 0;
  private scheduled = false;

  constructor(private readonly stream: NodeJS.WritableStream) {}

  write(line: string): void {
    this.lines.push(line);
    this.chars += line.length;
    // A busy turn can log hundreds of lines: write them out in pieces well below the 128 KB at which V8
    // puts a string in large-object space (see src/events/event-lines.ts).
    if (this.chars >= CHUNK_CHARS) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  readonly flush = (): void => {
    this.scheduled = false;
    if (this.lines.length === 0) return;
    const out = this.lines.length === 1 ? this.lines[0]! : this.lines.join("");
    this.lines = [];
    this.chars = 0;
    this.stream.write(out);
  };
}
