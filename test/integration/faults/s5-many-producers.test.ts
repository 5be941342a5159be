/**
 * S5: 10 producers send concurrently (each its own connection, one task per call as an application
 * would) while 2 worker processes consume: every task runs exactly once. 500 per producer here;
 * `npm run test:faults:full` runs the 2000.
 */
import { readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../../src/broker/redis/index.ts";
import type { Transport } from "../../../src/broker/transport.ts";
import { buildEnqueueItem } from "../../../src/client/build-message.ts";
import { numbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded, tally } from "../../support/fault-outcomes.ts";
import { spawnWorker, waitUntil, type WorkerProcess } from "../../support/fault-worker.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../../support/redis-server.ts";

const PER_PRODUCER = Number(process.env.QWORKER_FAULT_S5_PER ?? (process.env.QWORKER_FAULT_N ? 2000 : 500));
const PRODUCERS = 10;
const out = makeOutDir();
let redis: RedisServerHandle;
const transports: Transport[] = [];
const workers: WorkerProcess[] = [];

beforeAll(async () => {
  redis = await startRedisServer({ appendonly: true });
});

afterAll(async () => {
  for (const w of workers) await w.kill9();
  for (const t of transports) await t.close();
  await redis?.cleanup();
  out.cleanup();
});

describe.skipIf(!redisServerAvailable())("S5: many producers, two workers", () => {
  it(`${PRODUCERS} producers × ${PER_PRODUCER} tasks, 2 worker processes: 0 lost, 0 duplicates`, async () => {
    workers.push(spawnWorker({ broker: redis.url, outDir: out.dir, concurrency: 10 }));
    workers.push(spawnWorker({ broker: redis.url, outDir: out.dir, concurrency: 10 }));
    // Both consuming before the first send: on a loaded machine one worker can take seconds longer to start
    // (TypeScript from source) than the other needs to drain everything, and the last assertion below is
    // about sharing the work, not about start-up time.
    await Promise.all(workers.map((w) => w.ready()));
    const all: string[] = [];
    const producers = Array.from({ length: PRODUCERS }, async (_, p) => {
      const t = createRedisTransport(redis.url, { failFast: true });
      transports.push(t);
      await t.connect();
      const ids = numbered(`s5-p${p}-`, PER_PRODUCER);
      all.push(...ids);
      for (const id of ids) {
        await t.enqueue([buildEnqueueItem("faults.record", [id, 1], { id: `t-${id}` }, { queue: "default", maxPayloadBytes: 1 << 20 })]);
      }
    });
    await Promise.all(producers);
    const total = PRODUCERS * PER_PRODUCER;
    await waitUntil("every task to run", 120_000, () => recorded(out.dir).length >= total);
    // A moment for any duplicate to show up before counting.
    await new Promise((r) => setTimeout(r, 500));
    for (const w of workers) w.term();
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);
    const result = tally(out.dir, all);
    expect(result.lost).toEqual([]);
    expect([...result.duplicates.keys()]).toEqual([]);
    expect(result.unexpected).toEqual([]);
    // Both workers took part.
    const files = readdirSync(out.dir).filter((f) => f.startsWith("done."));
    expect(files.sort()).toEqual(workers.map((w) => `done.${w.pid}.log`).sort());
    expect(await transports[0]!.stats(["default"])).toEqual([{ name: "default", ready: 0, delayed: 0, active: 0, dead: 0 }]);
  }, 180_000);
});
