import { openSync, writeSync } from "node:fs";
/**
 * The qworker side of the benchmark, shared by bench/engines/qworker.ts (Redis transport) and
 * bench/engines/qworker-sqlite.ts (embedded SQLite transport).
 *
 * Producer: the library client (src/client/client.ts) on the engine's transport: `sendMany` per bulk batch
 * (one broker call per 1,000 tasks, as BullMQ's `addBulk`), `send` per single send.
 *
 * Worker: the real `Worker` class from src/worker/worker.ts (see createQworkerWorker). If a module is
 * missing, createWorker throws NotImplementedError and the orchestrator skips the engine's drain and
 * latency cases.
 *
 * Modules are imported by computed URL so this file loads even while one of them is missing.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { SettleItem, Transport } from "../../src/broker/transport.ts";
// Type-only imports: erased at run time (the modules are loaded with importFromRepo), but tsc flags any
// change of these APIs here.
import type { createClient } from "../../src/client/client.ts";
import type { configSchema } from "../../src/config/schema.ts";
import type { defineTask } from "../../src/tasks/define.ts";
import type { TaskRegistry } from "../../src/tasks/registry.ts";
import type { WorkerOptions } from "../../src/worker/worker.ts";
import { NotImplementedError, type BenchEngine, type BenchPayload, type BenchWorker, type WorkerSpec } from "./engine.ts";
import type { ChildOptions } from "./protocol.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BENCH_TASK = "bench.noop";
/** Priorities are 0..9, higher first; benchmark tasks all use one priority. */
const PRIORITY = 0;

/** Import a repository module by path; NotImplementedError when it is missing or lacks `exportName`. */
export async function importFromRepo(relPath: string, exportName: string): Promise<unknown> {
  // Compiled for `--runtime compiled` (bench/lib/compile.ts): the sibling modules are .js files too.
  const compiled = import.meta.url.endsWith(".js");
  const full = path.join(repoRoot, compiled ? relPath.replace(/\.ts$/, ".js") : relPath);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(new URL(`file://${full}`).href)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ERR_MODULE_NOT_FOUND") throw new NotImplementedError(`${relPath} does not exist yet`);
    throw err;
  }
  const value = mod[exportName];
  if (value === undefined) throw new NotImplementedError(`${relPath} does not export ${exportName} yet`);
  return value;
}

export async function qworkerVersion(kind: string): Promise<string> {
  const pkg = JSON.parse(await readFile(path.join(repoRoot, "package.json"), "utf8")) as { version?: string };
  return `qworker ${pkg.version ?? "?"} (${kind} transport)`;
}

export interface QworkerFlavor {
  name: string;
  kind: string;
  usesRedis: boolean;
  /** Broker URL for this scenario (Redis: the harness's server; SQLite: a file in the scenario's dataDir). */
  brokerUrl(opts: ChildOptions): string;
  createTransport(url: string): Promise<Transport>;
}

type WorkerCtor = new (opts: WorkerOptions) => import("../../src/worker/worker.ts").Worker;

/**
 * The real worker (src/worker/worker.ts) with its default async pool, one registered task BENCH_TASK whose
 * handler only calls spec.onStart, results ignored, prefetch 0 (the config default).
 *
 * Completion = the broker recorded it: the worker's transport is wrapped so that every id returned by a
 * successful `settle` call counts as completed. That needs no worker event and is exact for both transports.
 * createWorker connects the transport and awaits worker.ready() (registration, lease-keeper thread,
 * control-channel subscription) and starts the events recorder, as BullMQ's engine awaits
 * waitUntilReady(); run() calls start(), which only starts the fetch loop and the housekeeping timer.
 */
async function createQworkerWorker(flavor: QworkerFlavor, opts: ChildOptions, spec: WorkerSpec): Promise<BenchWorker> {
  const Worker = (await importFromRepo("src/worker/worker.ts", "Worker")) as WorkerCtor;
  const TaskRegistryCtor = (await importFromRepo("src/tasks/registry.ts", "TaskRegistry")) as new () => TaskRegistry;
  const define = (await importFromRepo("src/tasks/define.ts", "defineTask")) as typeof defineTask;
  const schema = (await importFromRepo("src/config/schema.ts", "configSchema")) as typeof configSchema;
  const createLogger = (await importFromRepo("src/log/logger.ts", "createLogger")) as typeof import("../../src/log/logger.ts").createLogger;
  const leaseKeeperFor = (await importFromRepo("src/worker/lease-keeper.ts", "leaseKeeperFor")) as typeof import("../../src/worker/lease-keeper.ts").leaseKeeperFor;
  const startObservers = (await importFromRepo("src/events/observe.ts", "startObservers")) as typeof import("../../src/events/observe.ts").startObservers;

  const url = flavor.brokerUrl(opts);
  const config = schema.parse({
    broker_url: url,
    concurrency: spec.concurrency,
    queues: [opts.queue],
    default_queue: opts.queue,
    loglevel: opts.loglevel ?? "info",
  });
  const registry = new TaskRegistryCtor();
  const task = define(BENCH_TASK, (payload: BenchPayload) => void spec.onStart(payload));
  registry.register(BENCH_TASK, task as unknown as Parameters<TaskRegistry["register"]>[1], "bench");

  const inner = await flavor.createTransport(url);
  await inner.connect();
  // Bound methods are made once: the worker calls the transport per batch, and a fresh bind per call
  // would bill the harness's allocations to qworker.
  const settle = async (items: SettleItem[]) => {
    const ids = await inner.settle(items);
    for (let i = 0; i < ids.length; i++) spec.onCompleted();
    return ids;
  };
  const bound = new Map<PropertyKey, unknown>();
  const transport: Transport = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === "settle") return settle;
      let v = bound.get(prop);
      if (v !== undefined) return v;
      v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== "function") return v;
      v = (v as (...a: unknown[]) => unknown).bind(target);
      bound.set(prop, v);
      return v;
    },
  });

  // Wired as src/cli/worker.ts wires a real worker (the product's JSON logger, the lease-keeper thread,
  // the events recorder), so the figures include what a deployed worker pays; log lines go to /dev/null.
  // What process.stderr is when it points at a file or, on Linux, a pipe (`docker logs`, systemd): a
  // stream whose write() is one synchronous write(2). The worker's logger writes once per event-loop turn.
  const fd = openSync("/dev/null", "w");
  const devNull = { isTTY: false, write: (chunk: string) => (writeSync(fd, chunk), true) } as unknown as NodeJS.WriteStream;
  const { logger } = createLogger(config.loglevel, "json", devNull);
  const fullConfig = { ...config, broker_url: url };
  const worker = new Worker({ transport, registry, config, logger, leaseKeeper: leaseKeeperFor(fullConfig, logger) });
  // Ready before the clock starts, as BullMQ's engine awaits waitUntilReady(): registration, the lease
  // keeper thread and the control subscription are one-off start-up work, not per-job cost.
  await worker.ready();
  const observers = await startObservers({ worker, transport, registry, config, logger });
  return {
    run() {
      worker.start().catch((err: unknown) => process.stderr.write(`worker.start: ${String(err)}\n`));
    },
    async close() {
      await observers.close();
      await worker.stop({ cold: true });
      await inner.close();
    },
  };
}

export function qworkerEngine(flavor: QworkerFlavor): BenchEngine {
  return {
    name: flavor.name,
    usesRedis: flavor.usesRedis,
    version: () => qworkerVersion(flavor.kind),

    async openProducer(opts) {
      const connect = (await importFromRepo("src/client/client.ts", "createClient")) as typeof createClient;
      const transport = await flavor.createTransport(flavor.brokerUrl(opts));
      await transport.connect();
      const client = await connect({ transport });
      const options = { queue: opts.queue, priority: PRIORITY, ignoreResult: true };
      return {
        async sendBulk(payloads) {
          await client.sendMany(payloads.map((p) => ({ task: BENCH_TASK, args: [p], options })));
        },
        async send(payload) {
          await client.send(BENCH_TASK, [payload], options);
        },
        close: () => client.close(),
      };
    },

    createWorker: (opts, spec) => createQworkerWorker(flavor, opts, spec),
  };
}
