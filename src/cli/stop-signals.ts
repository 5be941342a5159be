import type { Logger } from "pino";
import type { Worker } from "../worker/worker.ts";
import { takeEarlySignal } from "./early-signal.ts";

export interface StopSignalOptions {
  logger: Logger;
  /** config.shutdown_timeout, in seconds: named in the warm-shutdown line. */
  shutdownTimeout: number;
  /** The worker once start-up has made it; undefined before. */
  worker: () => Worker | undefined;
  /** A signal before the worker exists: nothing is held yet. */
  beforeWorker: () => void;
  /** The first signal once the worker exists. */
  warm: (worker: Worker) => void;
}

/**
 * SIGINT and SIGTERM for the commands that run a worker (`worker`, `demo`): installed before task modules
 * load and the broker opens, so a stop during start-up is a clean one (status 0) rather than death by the
 * signal. Before the worker exists `beforeWorker` decides; after, the first signal is a warm shutdown and a
 * second one cold. A signal that bin/qworker.js noted while the CLI's modules loaded counts as if it came now.
 */
export function installStopSignals(o: StopSignalOptions): void {
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    const worker = o.worker();
    if (!worker) {
      if (signals === 1) o.logger.warn(`${sig} received before the worker started: stopping`);
      o.beforeWorker();
    } else if (signals === 1) {
      o.logger.warn(`${sig} received: warm shutdown (finishing running tasks, up to ${o.shutdownTimeout} s; send again to stop now)`);
      o.warm(worker);
    } else {
      o.logger.warn(`${sig} received again: cold shutdown (handing running tasks back now)`);
      worker.requestCold();
    }
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const early = takeEarlySignal();
  if (early) onSignal(early);
}
