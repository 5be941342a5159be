import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * One full garbage collection, for the moment a worker has finished starting and not yet taken work.
 *
 * Start-up (loading modules, compiling the config schema, connecting) leaves a young generation full of
 * objects that are either garbage or will live for the whole process. Left alone, the first scavenges of
 * the first batch of tasks copy all of them, promote the survivors and soon trigger a mark-compact: in a
 * 20,000-task drain on 2 cores that was 8-15 ms of pauses in the first 100 ms, while the JIT is still
 * cold (bench/README.md, "Warm-up"). Collecting once here moves that cost before the first task.
 *
 * Node exposes no collector call without `--expose-gc` at start, which a `#!/usr/bin/env node` binary
 * cannot pass and a library must not require. The flag is switched on only for the moment it takes to
 * create one context that carries `gc` (the technique jest's leak detector uses), then switched off
 * again, so neither this process's global object nor any context a task creates later gets `gc`.
 * Returns how long the collection took, in ms, or undefined when the runtime refused.
 */
export function collectStartupGarbage(): number | undefined {
  let gc: unknown;
  try {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("typeof gc === 'function' ? gc : undefined");
  } catch {
    return undefined;
  } finally {
    setFlagsFromString("--no-expose-gc");
  }
  if (typeof gc !== "function") return undefined;
  const t0 = performance.now();
  (gc as () => void)();
  return performance.now() - t0;
}
