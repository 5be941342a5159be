/**
 * `qworker dead`, `requeue`, `purge` and `health` as a user runs them (real processes), plus reserve's
 * answer to a re-sent call (a reply lost with a dropped connection must not strand leases).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../../src/broker/redis/index.ts";
import { runScript } from "../../../src/broker/redis/scripts.ts";
import type { Transport } from "../../../src/broker/transport.ts";
import { Redis } from "ioredis";
import { enqueueNumbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded } from "../../support/fault-outcomes.ts";
import { spawnWorker, waitUntil } from "../../support/fault-worker.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../../support/redis-server.ts";

const bin = fileURLToPath(new URL("../../../bin/qworker.js", import.meta.url));
let redis: RedisServerHandle;
let t: Transport;
const out = makeOutDir();

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { env: { ...process.env, QWORKER_FROM_SOURCE: "1", QWORKER_HEALTH_DIR: out.dir, ...env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  redis = await startRedisServer({ appendonly: true });
  t = createRedisTransport(redis.url);
  await t.connect();
});
afterAll(async () => {
  await t?.close();
  await redis?.cleanup();
  out.cleanup();
});

describe.skipIf(!redisServerAvailable())("dead-letter CLI", () => {
  it("lists, requeues and purges dead tasks", async () => {
    await enqueueNumbered(t, ["d1", "d2"], { queue: "cliq" });
    const got = await t.reserve({ queues: ["cliq"], max: 2, leaseMs: 10_000, workerId: "cli-test", waitMs: 0 });
    await t.deadLetter(got.map((r) => ({ id: r.id, token: r.token, queue: r.queue, reason: "broken on purpose", error: "Boom" })));

    const listed = await cli(["dead", "--queue", "cliq", "--json", "--broker", redis.url]);
    expect(listed.code).toBe(0);
    const rows = listed.stdout.trim().split("\n").map((l) => JSON.parse(l) as { id: string; task: string; reason: string; error: string });
    expect(rows.map((r) => r.id).sort()).toEqual(["t-d1", "t-d2"]);
    expect(rows[0]).toMatchObject({ task: "faults.record", reason: "broken on purpose", error: "Boom" });

    const one = await cli(["requeue", "t-d1", "--queue", "cliq", "--broker", redis.url]);
    expect(one).toMatchObject({ code: 0, stdout: "requeued 1 of 1 task(s)\n" });
    expect((await t.stats(["cliq"]))[0]).toMatchObject({ ready: 1, dead: 1 });

    const refused = await cli(["purge", "cliq", "--broker", redis.url]);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toMatch(/add --yes/);

    const purged = await cli(["purge", "cliq", "--dead", "--yes", "--broker", redis.url]);
    expect(purged).toMatchObject({ code: 0, stdout: "purged 2 task(s) from queue cliq (dead-letter included)\n" });
    expect((await t.stats(["cliq"]))[0]).toMatchObject({ ready: 0, dead: 0 });

    const bad = await cli(["requeue", "--broker", redis.url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/give task ids .* or --all/);
  }, 90_000);

  it("health: non-zero with a reason when no worker runs, 0 while one makes progress", async () => {
    const none = await cli(["health"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no qworker worker is running on this host/);
    const w = spawnWorker({ broker: redis.url, outDir: out.dir, concurrency: 1, queues: ["healthq"] });
    try {
      await enqueueNumbered(t, ["h1"], { queue: "healthq" });
      await waitUntil("the worker to run a task", 60_000, () => recorded(out.dir).includes("h1"));
      const ok = await cli(["health", "--max-age", "5"]);
      expect(ok.code).toBe(0);
      expect(ok.stdout).toMatch(/^ok: worker .* made progress/);
    } finally {
      await w.kill9();
    }
    const after = await cli(["health"]);
    expect(after.code).toBe(1);
  }, 120_000);
});

describe.skipIf(!redisServerAvailable())("reserve re-sent after a lost reply", () => {
  it("returns the first call's leases instead of leasing more", async () => {
    await enqueueNumbered(t, ["r1", "r2", "r3"], { queue: "resend" });
    const raw = new Redis(redis.url);
    try {
      const args = ["qw:", "resend-worker", 2, 30_000, "tok123.", 60_000, "resend"];
      const first = (await runScript(raw, "reserve", args)) as unknown[];
      const again = (await runScript(raw, "reserve", args)) as unknown[];
      expect(first.slice(2)).toHaveLength(12);
      const leases = (out: unknown[]) => {
        const rows: string[] = [];
        for (let i = 2; i < out.length; i += 6) rows.push(out.slice(i, i + 6).join(" "));
        return rows.sort();
      };
      expect(leases(again)).toEqual(leases(first));
      expect((await t.stats(["resend"]))[0]).toMatchObject({ ready: 1, active: 2 });
    } finally {
      raw.disconnect();
    }
  });
});
