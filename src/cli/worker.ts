import { Command } from "commander";
import { createTransport, transportOptions } from "../broker/factory.ts";
import { loadConfig } from "../config/load.ts";
import type { QWorkerConfig } from "../config/schema.ts";
import { createLogger, type LogFormat, type LogLevel } from "../log/logger.ts";
import { startObservers } from "../events/observe.ts";
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
        const { config, file, defaultBroker } = loadConfig({
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
        const { registry, empty } = await discoverTasks(config.tasks_dir);
        for (const f of empty) logger.warn(`${f} defines no task (export a defineTask(...) to register one)`);
        // A worker started with its Redis (after a reboot) waits while Redis loads its data set: say so once,
        // or the worker looks hung until the banner.
        let toldLoading = false;
        const onLoading = (eta: number | undefined): void => {
          if (toldLoading) return;
          toldLoading = true;
          logger.warn(`waiting for the broker's Redis to load its data set${eta === undefined ? "" : ` (about ${eta} s left, by its own estimate)`}`);
        };
        const base = await createTransport(config.broker_url, { ...transportOptions(config), onLoading });
        // Celery interop (docs/celery.md) wraps the transport only when a `celery:` section is configured.
        const celery = config.celery ? (await import("../celery/worker-setup.ts")).addCelery(base, config, logger) : undefined;
        const transport = celery?.transport ?? base;
        await transport.connect();
        const pool = await createPool(config, logger);
        const worker = new Worker({ transport, registry, config, logger, pool, leaseKeeper: leaseKeeperFor(config, logger) });
        celery?.consumer.attach(worker.events);
        if (config.celery) logger.info(`celery queues: ${config.celery.queues.join(", ")} (results as celery-task-meta-*)`);
        banner(logger, config, transport.displayUrl, file, defaultBroker, worker.id, registry.names());
        for (const line of await transport.checkSettings?.().catch(() => []) ?? []) logger.warn(line);
        // Signal handlers go in before start-up finishes, so a SIGTERM during start-up is still a warm
        // shutdown (it waits for start-up, then stops) rather than the default abrupt exit.
        let startup: Promise<unknown> = Promise.resolve();
        let signals = 0;
        const done = new Promise<void>((resolve) => {
          const onSignal = (sig: NodeJS.Signals) => {
            signals++;
            if (signals === 1) {
              logger.warn(`${sig} received: warm shutdown (finishing running tasks, up to ${config.shutdown_timeout} s; send again to stop now)`);
              void startup.finally(() => worker.stop()).then(() => resolve(), () => resolve());
            } else {
              logger.warn(`${sig} received again: cold shutdown (handing running tasks back now)`);
              worker.requestCold();
            }
          };
          process.on("SIGTERM", onSignal);
          process.on("SIGINT", onSignal);
        });
        const started = (async () => {
          await worker.start();
          const observers = await startObservers({ worker, transport, registry, config, logger });
          const watchdog = new Watchdog({ worker, transport, logger, queues: config.queues, concurrency: config.concurrency, healthFile: new HealthFile(worker.id) }).start();
          return { observers, watchdog };
        })();
        startup = started;
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
