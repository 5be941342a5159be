/**
 * S2: redis-server goes away mid-run (graceful SHUTDOWN, then separately a SIGKILL) and comes back on the
 * same AOF data. The worker, with DEFAULT settings, must not exit, must log the outage once, must resume
 * within about a second of Redis answering, and must not run any task twice or lose one. The SIGKILL case
 * lasts 5 s: with the default 30 s lease a 5 s outage must cause no duplicate.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../../src/broker/redis/index.ts";
import type { Transport } from "../../../src/broker/transport.ts";
import { enqueueNumbered, numbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded, tally } from "../../support/fault-outcomes.ts";
import { spawnWorker, waitUntil, type WorkerProcess } from "../../support/fault-worker.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../../support/redis-server.ts";

const N = Number(process.env.QWORKER_FAULT_N ?? 1500);
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function outage(mode: "shutdown" | "kill9", downMs: number) {
  const out = makeOutDir();
  cleanups.push(out.cleanup);
  const redis: RedisServerHandle = await startRedisServer({ appendonly: true });
  cleanups.push(() => redis.cleanup());
  const t: Transport = createRedisTransport(redis.url);
  await t.connect();
  cleanups.push(() => t.close());

  const ids = numbered(`s2${mode}-`, N);
  await enqueueNumbered(t, ids, { ms: 5 });
  const w: WorkerProcess = spawnWorker({ broker: redis.url, outDir: out.dir, concurrency: 10 });
  cleanups.push(() => w.kill9());
  await waitUntil("30 % of the tasks to finish", 60_000, () => recorded(out.dir).length >= N * 0.3);

  if (mode === "shutdown") await redis.shutdown();
  else await redis.kill9();
  await new Promise((r) => setTimeout(r, downMs));
  expect(w.proc.exitCode).toBeNull();
  await redis.start();
  const back = recorded(out.dir).length;
  const resumedIn = await waitUntil("the worker to consume again", 10_000, () => recorded(out.dir).length >= back + 20);
  await waitUntil("every task to finish", 60_000, () => new Set(recorded(out.dir)).size >= N);

  w.term();
  expect(await w.exited).toBe(0);
  const result = tally(out.dir, ids);
  if (process.env.FAULT_DEBUG) console.log(mode, w.stderr());
  expect(result.lost).toEqual([]);
  expect([...result.duplicates.keys()]).toEqual([]);
  // Logged once, not once per retry: one "unreachable" line and one "reachable again" line.
  const msgs = w.logs().map((l) => l.msg ?? "");
  expect(msgs.filter((m) => /broker (unreachable|not answering)/.test(m))).toHaveLength(1);
  expect(msgs.filter((m) => /broker (reachable|answering) again/.test(m))).toHaveLength(1);
  expect(resumedIn).toBeLessThan(1500);
  expect(await t.stats(["default"])).toEqual([{ name: "default", ready: 0, delayed: 0, active: 0, dead: 0 }]);
  return resumedIn;
}

describe.skipIf(!redisServerAvailable())("S2: redis-server restarts under a running worker", () => {
  it("graceful SHUTDOWN, back after 2 s: nothing lost, nothing twice, worker never restarted", async () => {
    await outage("shutdown", 2000);
  }, 120_000);

  it("SIGKILL of redis-server, back after 5 s: nothing lost, nothing twice with the default 30 s lease", async () => {
    await outage("kill9", 5000);
  }, 120_000);
});
