/**
 * BullMQ as the peer engine, used the way its documentation shows: a `Queue` with `addBulk`/`add`, jobs
 * that remove themselves when done (`removeOnComplete`, `removeOnFail`), and one `Worker` with
 * `concurrency`. Run by bench/run.ts as `node --import tsx bench/engines/bullmq.ts <case> <json>`.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { Queue, Worker, type ConnectionOptions } from "bullmq";
import { runEngineMain, type BenchEngine, type BenchPayload } from "../lib/engine.ts";
import type { ChildOptions } from "../lib/protocol.ts";

function connectionFor(opts: ChildOptions): ConnectionOptions {
  const u = new URL(opts.redisUrl);
  // maxRetriesPerRequest: null is what BullMQ requires for worker connections.
  return { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };
}

const JOB_NAME = "noop";

async function bullmqVersion(): Promise<string> {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve("bullmq/package.json");
  const pkg = JSON.parse(await readFile(pkgPath, "utf8")) as { version: string };
  return `bullmq ${pkg.version}`;
}

const engine: BenchEngine = {
  name: "bullmq",
  usesRedis: true,
  version: bullmqVersion,

  async openProducer(opts) {
    const queue = new Queue<BenchPayload>(opts.queue, {
      connection: connectionFor(opts),
      defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
    });
    await queue.waitUntilReady();
    return {
      async sendBulk(payloads) {
        await queue.addBulk(payloads.map((data) => ({ name: JOB_NAME, data })));
      },
      async send(payload) {
        await queue.add(JOB_NAME, payload);
      },
      close: () => queue.close(),
    };
  },

  async createWorker(opts, spec) {
    const worker = new Worker<BenchPayload>(
      opts.queue,
      async (job) => {
        spec.onStart(job.data);
      },
      { connection: connectionFor(opts), concurrency: spec.concurrency, autorun: false },
    );
    worker.on("completed", () => spec.onCompleted());
    worker.on("failed", (_job, err) => process.stderr.write(`job failed: ${err.message}\n`));
    worker.on("error", (err) => process.stderr.write(`worker error: ${err.message}\n`));
    await worker.waitUntilReady();
    return {
      run() {
        worker.run().catch((err: unknown) => process.stderr.write(`worker.run: ${String(err)}\n`));
      },
      close: () => worker.close(),
    };
  },
};

await runEngineMain(async () => engine);
