import { QWorkerError } from "../errors.ts";

/** Set from QWORKER_LOGLEVEL (or the worker's --loglevel), so a failure shows its stack only at debug level. */
let showStack = false;
export function setShowStack(value: boolean): void {
  showStack = value;
}

/**
 * Run a command action; any error ends the process with one line on stderr and a non-zero exit code
 * (QWorkerError's own code, 1 otherwise). The stack appears only at debug level.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      exitWithError(err);
    }
  };
}

export function exitWithError(err: unknown): never {
  const e = err instanceof Error ? err : new Error(String(err));
  process.stderr.write(`qworker: error: ${e.message.split("\n")[0]}\n`);
  if (showStack && e.stack) process.stderr.write(`${e.stack}\n`);
  process.exit(e instanceof QWorkerError ? e.exitCode : 1);
}
