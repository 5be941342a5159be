/**
 * The watchdog against a connection that goes silent without closing (no FIN): the worker must notice,
 * log it once, rebuild its connections by itself and consume again; and against a worker whose rounds run
 * late, for each reason a real process gives. Plus the pure parts: the health verdict and the Redis
 * settings warnings.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../../src/broker/redis/index.ts";
import { settingsWarnings } from "../../../src/broker/redis/server-check.ts";
import type { Transport } from "../../../src/broker/transport.ts";
import { judge } from "../../../src/cli/health.ts";
import type { HealthRecord } from "../../../src/worker/health-file.ts";
import { enqueueNumbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded } from "../../support/fault-outcomes.ts";
import { startFaultProxy, type FaultProxy } from "../../support/fault-proxy.ts";
import { spawnWorker, waitUntil, type WorkerProcess } from "../../support/fault-worker.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../../support/redis-server.ts";

describe("health verdict", () => {
  const rec = (over: Partial<HealthRecord>): { file: string; record: HealthRecord } => ({
    file: "f",
    record: { id: "w1", pid: 10, progressAt: 1000, writtenAt: 1000, state: "ok", ...over },
  });
  it("is ok when a live worker made progress within max age", () => {
    expect(judge([rec({ progressAt: 95_000 })], 100_000, 30_000, () => true, "/d")).toMatchObject({ ok: true });
  });
  it("names the reason when the freshest live worker is too old", () => {
    const v = judge([rec({ progressAt: 10_000, writtenAt: 99_000, state: "broker-down", reason: "broker not answering for 89 s" })], 100_000, 30_000, () => true, "/d");
    expect(v.ok).toBe(false);
    expect(v.line).toMatch(/last made progress 90\.00 s ago: broker not answering/);
  });
  it("names a blocked event loop or a stopped process when the file itself stopped being written", () => {
    const v = judge([rec({ progressAt: 10_000, writtenAt: 10_000 })], 100_000, 30_000, () => true, "/d");
    expect(v.line).toMatch(/watchdog has not reported for 90\.00 s \(event loop blocked, or process stopped\/paused\?\)$/);
  });
  it("ignores files of dead processes", () => {
    expect(judge([rec({ progressAt: 99_000 })], 100_000, 30_000, () => false, "/d").line).toMatch(/no qworker worker is running/);
  });
});

describe("Redis settings warnings", () => {
  it("warns about eviction and missing persistence, one line each", () => {
    expect(settingsWarnings({ maxmemoryPolicy: "noeviction", appendonly: true, save: "" })).toEqual([]);
    const w = settingsWarnings({ maxmemoryPolicy: "allkeys-lru", appendonly: false, save: "" });
    expect(w).toHaveLength(2);
    expect(w[0]).toMatch(/allkeys-lru.*queued tasks.*noeviction/);
    expect(w[1]).toMatch(/persistence is off.*appendonly yes/);
    expect(settingsWarnings({ maxmemoryPolicy: "volatile-ttl", appendonly: false, save: "3600 1" })[1]).toMatch(/only RDB/);
  });
});

describe.skipIf(!redisServerAvailable())("watchdog with a silently dead connection", () => {
  // Each attempt builds its own Redis, proxy and output dir, so the one retry below starts clean.
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  // Usually about 5.5 s (the watchdog rebuilds after 5 s of silence). It used to fail in about a third to a
  // half of the full-suite runs: the freeze caught the worker opening its blocking connection after the
  // server's first handshake reply, and that connection then waited for ever, where neither the watchdog
  // (which rebuilds only connections that are up) nor ioredis (whose connect timeout ends at the TCP
  // connect) would end it. Connect attempts now have a deadline until ready
  // (src/broker/redis/handshake-guard.ts); test/integration/faults/handshake.test.ts pins that case down.
  it("rebuilds the connections and consumes again, logging the silence once", { timeout: 120_000 }, async () => {
    const redis: RedisServerHandle = await startRedisServer({ appendonly: true });
    cleanups.push(() => redis.cleanup());
    const proxy: FaultProxy = await startFaultProxy(redis.port);
    cleanups.push(() => proxy.close());
    const t: Transport = createRedisTransport(redis.url);
    await t.connect();
    cleanups.push(() => t.close());
    const out = makeOutDir();
    cleanups.push(() => out.cleanup());

    const w: WorkerProcess = spawnWorker({ broker: proxy.url, outDir: out.dir, concurrency: 5 });
    cleanups.push(() => w.kill9());
    await enqueueNumbered(t, ["before"]);
    await waitUntil("the worker to start", 60_000, () => recorded(out.dir).includes("before"));

    proxy.freeze();
    await enqueueNumbered(t, ["after-1", "after-2", "after-3"]);
    const took = await waitUntil("tasks to run over rebuilt connections", 30_000, () =>
      ["after-1", "after-2", "after-3"].every((id) => recorded(out.dir).includes(id)),
    ).catch((err: unknown) => {
      // Keep the evidence for the slow case in the CI log: the worker's own account of the outage.
      console.log(`worker log tail:\n${w.stderr().split("\n").slice(-40).join("\n")}\nrecorded: ${recorded(out.dir).join(",")}`);
      throw err;
    });
    if (process.env.FAULT_DEBUG) console.log(w.stderr());
    expect(took).toBeLessThan(15_000);
    expect(w.proc.exitCode).toBeNull();
    w.term();
    expect(await w.exited).toBe(0);
    const msgs = w.logs().map((l) => l.msg ?? "");
    expect(msgs.filter((m) => /broker not answering/.test(m))).toHaveLength(1);
    expect(msgs.filter((m) => /rebuilding the broker connections/.test(m)).length).toBeGreaterThanOrEqual(1);
  });
});

describe.skipIf(!redisServerAvailable())("watchdog rebuild into a server that does not answer yet", () => {
  // Usually about 14 s.
  it("keeps connecting until the server answers, then consumes", { timeout: 120_000 }, async () => {
    const redis = await startRedisServer();
    const proxy = await startFaultProxy(redis.port);
    const t = createRedisTransport(redis.url);
    const out = makeOutDir();
    const w = spawnWorker({ broker: proxy.url, outDir: out.dir, concurrency: 5, loglevel: process.env.FAULT_DEBUG ? "debug" : undefined });
    try {
      await t.connect();
      await enqueueNumbered(t, ["before"]);
      await waitUntil("the worker to start", 60_000, () => recorded(out.dir).includes("before"));
      // The open connections go silent, and new ones are accepted but not answered: the watchdog's rebuild
      // (after 5 s) lands in the stall. Without a deadline on the handshake those connections would wait
      // for ever, and the worker with them.
      proxy.freeze();
      proxy.stallNew(true);
      await enqueueNumbered(t, ["after-1", "after-2"]);
      await waitUntil("the watchdog's rebuild", 30_000, () => /rebuilding the broker connections/.test(w.stderr()));
      await new Promise((r) => setTimeout(r, 4000));
      expect(recorded(out.dir)).toEqual(["before"]);
      proxy.stallNew(false);
      const took = await waitUntil("tasks to run once the server answers", 30_000, () =>
        ["after-1", "after-2"].every((id) => recorded(out.dir).includes(id)),
      ).catch((err: unknown) => {
        console.log(`worker log tail:\n${w.stderr().split("\n").slice(-60).join("\n")}\nrecorded: ${recorded(out.dir).join(",")}`);
        throw err;
      });
      expect(took).toBeLessThan(15_000);
      expect(w.proc.exitCode).toBeNull();
    } finally {
      await w.kill9();
      await t.close();
      await proxy.close();
      await redis.cleanup();
      out.cleanup();
    }
  });
});

describe.skipIf(!redisServerAvailable())("start-up warning about Redis settings", () => {
  it("a worker on a Redis without persistence and with allkeys eviction says why that is risky", async () => {
    const redis = await startRedisServer({ appendonly: false, extraArgs: ["--maxmemory-policy", "allkeys-lru"] });
    const out = makeOutDir();
    const w = spawnWorker({ broker: redis.url, outDir: out.dir, concurrency: 1 });
    try {
      await waitUntil("the settings warnings", 60_000, () => /persistence is off/.test(w.stderr()) && /allkeys-lru/.test(w.stderr()));
    } finally {
      await w.kill9();
      await redis.cleanup();
      out.cleanup();
    }
  }, 90_000);
});

describe.skipIf(!redisServerAvailable())("watchdog rounds that ran late", () => {
  // Usually about 15 s: three gaps of 3 s in one worker.
  it("calls neither a stopped process nor a synchronous wait a CPU-bound task, and still calls a busy loop one", { timeout: 120_000 }, async () => {
    const redis = await startRedisServer();
    const t = createRedisTransport(redis.url);
    const out = makeOutDir();
    const w = spawnWorker({ broker: redis.url, outDir: out.dir, concurrency: 1 });
    const lateLines = () => w.logs().map((l) => l.msg ?? "").filter((m) => /^the (event loop was blocked|worker's main thread did not run) for /.test(m));
    try {
      await t.connect();
      await enqueueNumbered(t, ["before"]);
      await waitUntil("the worker to start", 60_000, () => recorded(out.dir).includes("before"));
      await w.ready();

      // The whole process stopped: no CPU during the gap.
      process.kill(w.pid, "SIGSTOP");
      await new Promise((r) => setTimeout(r, 3000));
      process.kill(w.pid, "SIGCONT");
      await waitUntil("the watchdog's word on the stop", 20_000, () => lateLines().length >= 1);
      const stopped = /^the worker's main thread did not run for [2-9]\.\d\d s and the process used \d+\.\d ms of CPU meanwhile, so no task kept it busy: the process was stopped or paused \(SIGSTOP/;
      expect(lateLines()).toEqual([expect.stringMatching(stopped)]);
      expect(lateLines()[0]).toMatch(/renews no leases/);

      // A task that keeps the loop on the CPU: the advice that has always been given.
      await enqueueNumbered(t, ["spin"], { task: "faults.spin", ms: 3000 });
      await waitUntil("the watchdog's word on the busy loop", 30_000, () => lateLines().length >= 2);
      expect(lateLines()[1]).toMatch(/^the event loop was blocked for [2-9]\.\d\d s, most likely by a task running synchronous code; CPU-bound tasks belong in pool: process$/);

      // A task that holds the loop without CPU: not the CPU-bound advice either.
      await enqueueNumbered(t, ["wait"], { task: "faults.syncWait", ms: 3000 });
      await waitUntil("the watchdog's word on the synchronous wait", 30_000, () => lateLines().length >= 3);
      expect(lateLines()[2]).toMatch(stopped);

      expect(lateLines()).toHaveLength(3);
      expect(recorded(out.dir).sort()).toEqual(["before", "spin", "wait"]);
      expect(w.proc.exitCode).toBeNull();
      if (process.env.FAULT_DEBUG) console.log(lateLines().join("\n"));
    } catch (err) {
      console.log(`worker log tail:\n${w.stderr().split("\n").slice(-30).join("\n")}`);
      throw err;
    } finally {
      await w.kill9();
      await t.close();
      await redis.cleanup();
      out.cleanup();
    }
  });
});
