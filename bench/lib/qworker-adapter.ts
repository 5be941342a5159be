/**
 * The qworker side of the benchmark, shared by bench/engines/qworker.ts (Redis transport) and
 * bench/engines/qworker-sqlite.ts (embedded SQLite transport).
 *
 * Producer: encodes v1 task messages (src/protocol/message.ts) and calls `Transport.enqueue` — one call
 * per bulk batch, one per single send.
 *   TODO(bench): switch to the public client API (src/client) once it exists, so sends pay what users pay.
 *
 * Worker: uses the worker from src/worker/index.ts. It must export a `startWorker`-like function; until
 * it does, createWorker throws NotImplementedError and the orchestrator skips the engine's drain and
 * latency cases (see WORKER_TODO below).
 *
 * Modules are imported by computed URL so this file typechecks and loads while they are still missing.
 */
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { EnqueueItem, Transport } from "../../src/broker/transport.ts";
import { MESSAGE_VERSION, encodeMessage, type TaskMessage } from "../../src/protocol/message.ts";
import { NotImplementedError, type BenchEngine, type BenchPayload, type BenchWorker, type WorkerSpec } from "./engine.ts";
import type { ChildOptions } from "./protocol.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BENCH_TASK = "bench.noop";
/** Priorities are 0..9, higher first; benchmark tasks all use one priority. */
const PRIORITY = 0;

/** Import a repository module by path; NotImplementedError when it is missing or lacks `exportName`. */
export async function importFromRepo(relPath: string, exportName: string): Promise<unknown> {
  const full = path.join(repoRoot, relPath);
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

function message(queue: string, payload: BenchPayload): { item: EnqueueItem } {
  const id = randomUUID();
  const msg: TaskMessage = {
    v: MESSAGE_VERSION,
    id,
    task: BENCH_TASK,
    args: [payload],
    kwargs: {},
    queue,
    priority: PRIORITY,
    retries: 0,
    sentAt: Date.now(),
    ignoreResult: true,
  };
  return { item: { id, queue, priority: PRIORITY, payload: encodeMessage(msg) } };
}

export interface QworkerFlavor {
  name: string;
  kind: string;
  usesRedis: boolean;
  /** Broker URL for this scenario (Redis: the harness's server; SQLite: a file in the scenario's dataDir). */
  brokerUrl(opts: ChildOptions): string;
  createTransport(url: string): Promise<Transport>;
}

/*
 * WORKER_TODO: wire the real worker here once src/worker/index.ts exports it. What the harness needs:
 *   - a worker for `brokerUrl`, queue `opts.queue`, concurrency `spec.concurrency`, one registered task
 *     named BENCH_TASK whose handler is `(payload: BenchPayload) => { spec.onStart(payload); }`,
 *     results ignored, default prefetch;
 *   - connected and ready before createWorker resolves, consuming only after run() (if the API cannot
 *     separate the two, start it in createWorker: the drain clock then also counts its start-up);
 *   - a hook called after each task has been settled in the broker → spec.onCompleted() (if there is
 *     none, calling onCompleted at the end of the handler is an acceptable approximation; say so in the
 *     results);
 *   - close(): graceful stop.
 */
async function createQworkerWorker(flavor: QworkerFlavor, opts: ChildOptions, spec: WorkerSpec): Promise<BenchWorker> {
  const startWorker = await importFromRepo("src/worker/index.ts", "startWorker");
  void startWorker;
  void flavor;
  void opts;
  void spec;
  throw new NotImplementedError("bench adapter for the qworker worker is not written yet (bench/lib/qworker-adapter.ts WORKER_TODO)");
}

export function qworkerEngine(flavor: QworkerFlavor): BenchEngine {
  return {
    name: flavor.name,
    usesRedis: flavor.usesRedis,
    version: () => qworkerVersion(flavor.kind),

    async openProducer(opts) {
      const transport = await flavor.createTransport(flavor.brokerUrl(opts));
      await transport.connect();
      return {
        async sendBulk(payloads) {
          await transport.enqueue(payloads.map((p) => message(opts.queue, p).item));
        },
        async send(payload) {
          await transport.enqueue([message(opts.queue, payload).item]);
        },
        close: () => transport.close(),
      };
    },

    createWorker: (opts, spec) => createQworkerWorker(flavor, opts, spec),
  };
}
