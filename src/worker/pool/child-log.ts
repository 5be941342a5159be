import type { Logger } from "pino";

const METHODS = { 10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal" } as const;

/**
 * Re-log a JSON line written by a pool child's pino logger through the worker's logger, so task logs
 * come out in the worker's format and destination, tagged with the child's pid.
 */
export function forwardChildLog(logger: Logger, line: string, pid: number): void {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    logger.info({ child: pid }, line.trimEnd());
    return;
  }
  const { level, msg, time: _time, ...fields } = rec;
  const method = METHODS[(typeof level === "number" ? level : 30) as keyof typeof METHODS] ?? "info";
  logger[method]({ ...fields, child: pid }, typeof msg === "string" ? msg : "");
}
