import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { createTransport, transportOptions } from "../broker/factory.ts";
import type { Transport } from "../broker/transport.ts";
import { createClient } from "../client/client.ts";
import { loadConfig } from "../config/load.ts";
import { TaskLoadError } from "../errors.ts";
import { createLogger, type LogFormat, type LogLevel } from "../log/logger.ts";
import { startObservedWorker, type Observers } from "../events/observe.ts";
import { discoverTasks } from "../tasks/discovery.ts";
import { Worker } from "../worker/worker.ts";
import { preview } from "../worker/format.ts";
import { action } from "./errors.ts";
import { installStopSignals } from "./stop-signals.ts";

/** The example tasks in the package itself (its tasks/ directory), from src/cli/ and dist/cli/ alike. */
const SHIPPED_EXAMPLES = fileURLToPath(new URL("../../tasks", import.meta.url));

const isDirectory = (path: string): boolean => existsSync(path) && statSync(path).isDirectory();

/** The example calls the demo sends: one per example task. */
const EXAMPLES: { task: string; args: unknown[] }[] = [
  { task: "demo.add", args: [2, 3] },
  { task: "shop.send_invoice_email", args: [1234] },
  { task: "shop.notify_warehouse", args: [1234, ["book", "lamp"]] },
  { task: "reports.generate", args: ["monthly-sales", 3] },
  { task: "demo.risky", args: [7] },
];

interface DemoFlags {
  exit?: boolean;
  broker?: string;
  config?: string;
  tasks?: string;
}

/**
 * The Quickstart's main job in one command: a worker with the example tasks on the configured broker
 * (the embedded one by default), the example tasks sent to it, and their results printed as they land.
 * The worker then keeps running, so `qworker send` from another shell reaches it.
 */
export function demoCommand(): Command {
  return new Command("demo")
    .description("start a worker with the example tasks, send each one a task and print the results")
    .option("--exit", "stop once the example results are in (instead of running on as a worker)")
    .option("--broker <url>", "broker URL (default: config, or the embedded SQLite broker)")
    .option("--config <path>", "config file (default config/qworker.yaml)")
    .option("--tasks <dir>", "the directory holding the example tasks (default tasks/)")
    .addHelpText("after", `\nExample:\n  $ npx qworker demo\n  $ npx qworker demo --exit --broker redis://127.0.0.1:6379/0`)
    .action(
      action(async (flags: DemoFlags) => {
        const { config, defaultBroker, defaultTasksDir } = loadConfig({
          ...(flags.config ? { configPath: flags.config } : {}),
          overrides: { broker_url: flags.broker, tasks_dir: flags.tasks },
        });
        const { logger, flush } = createLogger(config.loglevel as LogLevel, config.log_format as LogFormat);
        // Signal handlers go in first, as the worker command's do (src/cli/worker.ts): a Ctrl-C while the
        // tasks load, the broker opens or the examples run is a clean stop with status 0, not death by
        // SIGINT (130) with tasks left leased until their heartbeat lapses. Before the worker exists nothing is
        // held and it exits at once; after, the first signal is a warm shutdown, a second one cold.
        // Set once start-up reaches them; read by the handlers, which may run before.
        let worker: Worker | undefined = undefined;
        let started: Promise<Observers> | undefined = undefined;
        let transport: Transport | undefined = undefined;
        let stopping: Promise<void> | undefined;
        const shutdown = (): Promise<void> =>
          (stopping ??= (async () => {
            // A worker whose start-up failed holds nothing: that failure is reported as the command's error.
            const observers = await started?.catch(() => undefined);
            if (worker && observers) {
              await worker.stop();
              await observers.close();
            }
            await transport?.close();
            if (observers) logger.info("worker stopped");
            flush();
            process.exit(0);
          })());
        installStopSignals({
          logger,
          shutdownTimeout: config.shutdown_timeout,
          worker: () => worker,
          beforeWorker: () => {
            flush();
            process.exit(0);
          },
          warm: () => void shutdown(),
        });
        // The demo is about the example tasks: without them it would send nothing and report "0/0 succeeded"
        // (or run on as a worker with someone else's tasks), which looks like success. Fail before any broker
        // is opened or created instead. Some examples missing is fine: it sends to those it has.
        const dir = resolve(config.tasks_dir);
        const own = isDirectory(dir) ? (await discoverTasks(dir)).registry : undefined;
        // Where nothing says otherwise and ./tasks has no task of its own (`npx qworker demo` in a new
        // project, after `npm i qworker`), the examples come with the package. A directory that was asked
        // for, or that holds someone's tasks, is never swapped for them.
        const shipped = defaultTasksDir && (own?.names().length ?? 0) === 0 && isDirectory(SHIPPED_EXAMPLES);
        if (shipped) logger.info(`demo: no tasks in ${dir}: using the example tasks shipped with qworker (${SHIPPED_EXAMPLES})`);
        const registry = shipped ? (await discoverTasks(SHIPPED_EXAMPLES)).registry : own;
        const way = defaultTasksDir
          ? "pass --tasks DIR with the examples (the ones shipped with qworker stand in only for a tasks/ with no tasks of its own)"
          : "point --tasks (or tasks_dir) at a directory with the examples, or leave it unset to use the ones shipped with qworker";
        const noExamples = (what: string) => new TaskLoadError(`${what} (the demo runs ${EXAMPLES.map((e) => e.task).join(", ")}): ${way}`);
        if (!registry) throw noExamples(`no tasks directory at ${dir}`);
        if (!EXAMPLES.some((e) => registry.get(e.task))) throw noExamples(`no example tasks found in ${shipped ? SHIPPED_EXAMPLES : dir}`);
        transport = await createTransport(config.broker_url, transportOptions(config));
        await transport.connect();
        worker = new Worker({ transport, registry, config, logger });
        logger.info(`demo: worker on ${transport.displayUrl}${defaultBroker ? " (embedded broker)" : ""} with tasks ${registry.names().join(", ")}`);
        // Task events, `inspect stats` counters and metrics (when metrics_port is set), as a worker records them.
        started = startObservedWorker({ worker, transport, registry, config, logger });
        await started;
        const client = await createClient({ transport });

        const outcomes = await Promise.all(
          EXAMPLES.filter((e) => registry.get(e.task)).map(async ({ task, args }) => {
            const ref = await client.send(task, args);
            const call = `${task}(${args.map((a) => JSON.stringify(a)).join(", ")})`;
            try {
              const value = await ref.get({ timeout: 60 });
              process.stdout.write(`${call} -> ${preview(value)}\n`);
              return true;
            } catch (err) {
              process.stdout.write(`${call} -> failed: ${(err as Error).message}\n`);
              return false;
            }
          }),
        );
        // Stopped by a signal while the examples ran: the results that landed are printed, nothing more.
        if (stopping) return stopping;
        const ok = outcomes.filter(Boolean).length;
        process.stdout.write(`${ok}/${outcomes.length} example tasks succeeded (demo.risky fails on purpose now and then, after its retries)\n`);
        if (flags.exit) return shutdown();
        process.stdout.write(
          `the worker keeps running: in another shell try\n  npx qworker send demo.add --args '[4, 5]'\n  npx qworker inspect\nCtrl-C to stop\n`,
        );
      }),
    );
}
