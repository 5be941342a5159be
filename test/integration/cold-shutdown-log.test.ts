/**
 * A cold shutdown (a second SIGTERM while tasks run) of a real `qworker worker`, on both brokers and both
 * pools: the tasks go back to their queue, the worker says so once, and the process pool does not report
 * the children it kills on the way out as lost ones it replaces.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../src/broker/factory.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { enqueueNumbered, numbered } from "../support/fault-enqueue.ts";
import { makeOutDir } from "../support/fault-outcomes.ts";
import { spawnWorker, waitUntil, type WorkerProcess } from "../support/fault-worker.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

let redis: RedisServerHandle | undefined;
const workers: WorkerProcess[] = [];
const cleanups: (() => void | Promise<void>)[] = [];

beforeAll(async () => {
  if (redisServerAvailable()) redis = await startRedisServer();
});

afterAll(async () => {
  for (const w of workers) await w.kill9();
  for (const c of cleanups.reverse()) await c();
  await redis?.cleanup();
});

const brokers = [
  { name: "embedded", url: (dir: string) => `sqlite://${join(dir, "broker.db")}` },
  { name: "redis", url: () => redis!.url },
];

describe.each(brokers)("cold shutdown on the $name broker", ({ name, url }) => {
  it.each(["async", "process"])("%s pool: one 'handed back' line, no child 'replaced', exit 0", async (pool) => {
    if (name === "redis" && !redis) return;
    const out = makeOutDir();
    cleanups.push(out.cleanup);
    const broker = url(out.dir);
    const queue = `cold-${pool}`;
    const t: Transport = await createTransport(broker);
    await t.connect();
    cleanups.push(() => t.close());
    await enqueueNumbered(t, numbered(`${name}-${pool}-`, 3), { queue, ms: 20_000 });

    const w = spawnWorker({ broker, outDir: out.dir, concurrency: 3, queues: [queue], loglevel: "info", env: { QWORKER_POOL: pool } });
    workers.push(w);
    await w.ready();
    await waitUntil("three tasks to start", 30_000, () => w.logs().filter((l) => / started$/.test(l.msg ?? "")).length === 3);
    w.term();
    await waitUntil("the warm shutdown to begin", 10_000, () => w.stderr().includes("warm shutdown"));
    w.term();
    const code = await Promise.race([w.exited, new Promise((r) => setTimeout(() => r("still running 15 s after the second SIGTERM"), 15_000))]);
    expect(code, w.stderr()).toBe(0);

    const lines = w.logs().map((l) => l.msg ?? "");
    expect(lines.filter((l) => l === "handed back 3 unfinished task(s) to the queue"), w.stderr()).toHaveLength(1);
    expect(lines.filter((l) => /replacing it/.test(l)), w.stderr()).toEqual([]);
    expect((await t.stats([queue]))[0]).toMatchObject({ ready: 3, active: 0 });
  }, 90_000);
});
