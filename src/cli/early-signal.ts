/**
 * The signal bin/qworker.js noted for the worker command before that command had handlers of its own
 * (while Node still loaded the CLI's modules), if any. The noting listeners are removed: call this once the
 * command's own handlers are installed, so no signal falls between the two.
 */
export function takeEarlySignal(): NodeJS.Signals | undefined {
  const key = Symbol.for("qworker.earlySignal");
  const g = globalThis as { [key]?: { signal: NodeJS.Signals | undefined; listener: (sig: NodeJS.Signals) => void } };
  const early = g[key];
  if (!early) return undefined;
  delete g[key];
  process.off("SIGTERM", early.listener);
  process.off("SIGINT", early.listener);
  return early.signal;
}
