import { Command } from "commander";
import type { Logger } from "pino";
import { createTransport, transportOptions } from "../broker/factory.ts";
import type { Transport } from "../broker/transport.ts";
import { loadConfig } from "../config/load.ts";
import { BrokerUnreachableError } from "../errors.ts";
import type { QWorkerConfig } from "../config/schema.ts";
import { createLogger, type LogFormat, type LogLevel } from "../log/logger.ts";
import { reportTaskExits } from "../worker/task-exit.ts";
import { startObservedWorker } from "../events/observe.ts";
import { discoverTasks } from "../tasks/discovery.ts";
import { VERSION } from "../version.ts";
import { HealthFile } from "../worker/health-file.ts";
import { Watchdog } from "../worker/watchdog.ts";
import { leaseKeeperFor } from "../worker/lease-keeper.ts";
import { createPool } from "../worker/pool/index.ts";
import { installStrayErrorGuard } from "../worker/stray-errors.ts";
import { Worker } from "../worker/worker.ts";
import { action, setShowStack } from "./errors.ts";
import { parseNumberOption } from "./json-option.ts";
import { installStopSignals } from "./stop-signals.ts";

interface WorkerFlags {
  loglevel?: string;
  logFormat?: string;
  concurrency?: string;
  queues?: string;
  config?: string;
  tasks?: string;
  broker?: string;
  pool?: string;
  metricsPort?: string;
}

export function workerCommand(): Command {
  return new Command("worker")
    .description("run a worker daemon: load tasks, consume the broker, log every execution")
    .option("-l, --loglevel <level>", "debug | info | warning | error")
    .option("--log-format <format>", "auto (pretty on a TTY, JSON lines otherwise) | pretty | json")
    .option("-c, --concurrency <n>", "tasks run at once")
    .option("-Q, --queues <a,b>", "queues to consume, most important first")
    .option("--pool <kind>", "async (tasks share this process's event loop) | process (one child process per slot)")
    .option("--tasks <dir>", "tasks directory (default tasks/)")
    .option("--broker <url>", "broker URL (overrides config and QWORKER_BROKER_URL)")
    .option("--config <path>", "config file (default config/qworker.yaml)")
    .option("--metrics-port <port>", "serve Prometheus metrics on this port at /metrics")
    .addHelpText("after", `\nExample:\n  $ qworker worker --loglevel=info --concurrency 20 --queues default,emails`)
    .action(
      action(async (flags: WorkerFlags) => {
        if (flags.loglevel?.toLowerCase() === "debug") setShowStack(true);
        const { config, file, defaultBroker, unknownEnv } = loadConfig({
          ...(flags.config ? { configPath: flags.config } : {}),
          overrides: {
            loglevel: flags.loglevel,
            log_format: flags.logFormat,
            concurrency: flags.concurrency === undefined ? undefined : parseNumberOption(flags.concurrency, "--concurrency", { integer: true, min: 1 }),
            queues: flags.queues?.split(",").map((s) => s.trim()).filter(Boolean),
            tasks_dir: flags.tasks,
            broker_url: flags.broker,
            pool: flags.pool,
            metrics_port: flags.metricsPort === undefined ? undefined : parseNumberOption(flags.metricsPort, "--metrics-port", { integer: true, min: 0, max: 65_535 }),
          },
        });
        setShowStack(config.loglevel === "debug");
        const { logger, flush } = createLogger(config.loglevel as LogLevel, config.log_format as LogFormat);
        installStrayErrorGuard(logger);
        reportTaskExits(logger, flush);
        for (const { name, meant } of unknownEnv) logger.warn(`environment variable ${name} is not a setting (did you mean ${meant}?); it is ignored`);
        // Signal handlers go in before tasks are loaded, the broker is connected and start-up finishes (one
        // that came while the CLI itself loaded was noted by bin/qworker.js and counts as if it came now). A
        // SIGTERM while tasks load stops the worker with status 0 (not death by signal, 143: a supervisor
        // stopping a worker it just started is not a crash); one while it waits for its broker (which can
        // take as long as the broker takes to come up) stops it at once, also with 0; one during start-up
        // is still a warm shutdown (it waits for start-up, then stops) rather than an abrupt exit.
        let worker: Worker | undefined = undefined;
        let startup: Promise<unknown> = Promise.resolve();
        let loading = true;
        const beforeWorker = new AbortController();
        let stopped = (): void => {};
        const done = new Promise<void>((resolve) => (stopped = resolve));
        const warmShutdown = (w: Worker): void => void startup.finally(() => w.stop()).then(stopped, stopped);
        installStopSignals({
          logger,
          shutdownTimeout: config.shutdown_timeout,
          worker: () => worker,
          beforeWorker: () => {
            beforeWorker.abort();
            // Nothing is held yet, and a task module still loading (say, a top-level await) must not keep it.
            if (loading) {
              flush();
              process.exit(0);
            }
          },
          warm: warmShutdown,
        });
        const { registry, empty } = await discoverTasks(config.tasks_dir);
        for (const f of empty) {
          logger.warn(`${f} defines no task (export a defineTask(...) to register one, or start the file's or its folder's name with _ to keep a helper out of task discovery)`);
        }
        // A worker started with its Redis (after a reboot) waits while Redis loads its data set: say so once,
        // or the worker looks hung until the banner.
        let toldLoading = false;
        const onLoading = (eta: number | undefined): void => {
          if (toldLoading) return;
          toldLoading = true;
          logger.warn(`waiting for the broker's Redis to load its data set${eta === undefined ? "" : ` (about ${eta} s left, by its own estimate)`}`);
        };
        // A new file is right on a first run, and a typo in the path otherwise: either way, say where it is.
        const onCreate = (file: string): void => logger.info(`created the broker file ${file}; senders must use this file too`);
        const base = await createTransport(config.broker_url, { ...transportOptions(config), onLoading, onCreate });
        // Celery interop (docs/celery.md) wraps the transport only when a `celery:` section is configured.
        const celery = config.celery ? (await import("../celery/worker-setup.ts")).addCelery(base, config, logger) : undefined;
        const transport = celery?.transport ?? base;
        loading = false;
        if (!(await connectBroker(transport, logger, config.broker_connection_retry_on_startup, beforeWorker.signal))) {
          await transport.close();
          logger.info("worker stopped");
          flush();
          process.exit(0);
        }
        const pool = await createPool(config, logger);
        worker = new Worker({ transport, registry, config, logger, pool, leaseKeeper: leaseKeeperFor(config, logger) });
        celery?.consumer.attach(worker.events);
        if (config.celery) logger.info(`celery queues: ${config.celery.queues.join(", ")} (results as celery-task-meta-*)`);
        banner(logger, config, transport.displayUrl, file, defaultBroker, worker.id, registry.names());
        for (const line of await transport.checkSettings?.().catch(() => []) ?? []) logger.warn(line);
        const running = worker;
        const started = (async () => {
          const observers = await startObservedWorker({ worker: running, transport, registry, config, logger });
          const watchdog = new Watchdog({ worker: running, transport, logger, queues: config.queues, concurrency: config.concurrency, healthFile: new HealthFile(running.id) }).start();
          return { observers, watchdog };
        })();
        startup = started;
        // A signal that came after the broker connected but before the worker existed: stop it as the first
        // signal would have, once its start-up is done.
        if (beforeWorker.signal.aborted) warmShutdown(running);
        const { observers, watchdog } = await started;
        await done;
        await observers.close();
        watchdog.stop();
        await transport.close();
        logger.info("worker stopped");
        flush();
        process.exit(0);
      }),
    );
}

/** Delays between a worker's first connect attempts, in seconds: quick while its Redis starts, then every 5 s. */
const CONNECT_RETRY_DELAYS = [1, 2, 4, 5];

/**
 * Connect the worker's transport. A broker that cannot be reached yet (connection refused, no answer, host
 * or name not found: a worker started at boot beside its Redis, or while Redis restarts) is tried again,
 * with one warning per attempt, unless `retry` is off; any other error (a refused password, a db the
 * server does not have) ends the worker as before. False when `stop` fired first.
 */
async function connectBroker(transport: Transport, logger: Logger, retry: boolean, stop: AbortSignal): Promise<boolean> {
  for (let attempt = 0; !stop.aborted; attempt++) {
    try {
      return await untilAborted(transport.connect(), stop);
    } catch (err) {
      if (!retry || !(err instanceof BrokerUnreachableError) || stop.aborted) throw err;
      const delay = CONNECT_RETRY_DELAYS[Math.min(attempt, CONNECT_RETRY_DELAYS.length - 1)]!;
      logger.warn(`${err.problem}: trying again in ${delay} s`);
      await untilAborted(new Promise((r) => setTimeout(r, delay * 1000)), stop);
    }
  }
  return false;
}

/**
 * True once `work` is done, false as soon as `stop` fires (the work is left to finish or fail unheard).
 * A connect attempt can take seconds (a server that does not answer is given 3 s), and a stop must not
 * wait for it.
 */
function untilAborted(work: Promise<unknown>, stop: AbortSignal): Promise<boolean> {
  if (stop.aborted) {
    work.catch(() => {});
    return Promise.resolve(false);
  }
  return new Promise((resolve, reject) => {
    const onAbort = (): void => resolve(false);
    stop.addEventListener("abort", onAbort, { once: true });
    work.then(
      () => {
        stop.removeEventListener("abort", onAbort);
        resolve(true);
      },
      (err: unknown) => {
        stop.removeEventListener("abort", onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

function banner(
  logger: import("pino").Logger,
  config: QWorkerConfig & { broker_url: string },
  brokerShown: string,
  file: string | undefined,
  defaultBroker: boolean,
  id: string,
  tasks: string[],
): void {
  logger.info(`qworker ${VERSION} worker ${id}`);
  logger.info(`broker: ${brokerShown}${file ? ` (config ${file})` : ""}`);
  if (defaultBroker) {
    logger.info("using the embedded SQLite broker (no broker_url set); for Redis set broker_url: redis://host:6379/0 or QWORKER_BROKER_URL");
  }
  logger.info(`concurrency: ${config.concurrency} (${config.pool} pool), queues: ${config.queues.join(", ")}`);
  logger.info(`tasks (${tasks.length}): ${tasks.join(", ") || "none"}`);
  // Every task it receives would fail as not registered and be dead-lettered: almost surely the wrong directory.
  if (tasks.length === 0) logger.warn(`no tasks found under ${config.tasks_dir}: every task this worker receives fails as not registered (run it in your project's directory, or set tasks_dir / --tasks)`);
}
