/**
 * A real Python Celery client (Debian's celery 5.2) against qworker CLI workers on a private Redis:
 * delay/send_task/apply_async, AsyncResult.get, errors mapped to Python exceptions, countdown, expires,
 * retry, revoke broadcasts, and a worker SIGKILLed mid-task whose Celery task still completes.
 * Skipped with the reason when /usr/bin/python3 has no celery.
 */
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { celeryMissing, runCeleryClient, startQworkerWorker, type Proc, type PyResult } from "../fixtures/celery/interop.ts";

const missing = celeryMissing();

describe.skipIf(missing !== undefined)(`Python Celery client → qworker worker${missing ? ` (skipped: ${missing})` : ""}`, () => {
  let redis: RedisServerHandle;
  let r: Redis;
  let outDir: string;
  const workers: Proc[] = [];

  beforeAll(async () => {
    redis = await startRedisServer();
    r = new Redis(redis.url);
    outDir = mkdtempSync(path.join(os.tmpdir(), "qw-celery-out-"));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    r?.disconnect();
    await redis?.cleanup();
  });

  async function worker(extra = "", slots: { concurrency?: number; prefetch?: number } = {}): Promise<Proc> {
    const w = startQworkerWorker(redis.url, outDir, extra, slots);
    workers.push(w);
    await w.waitFor(/celery queues: celery/);
    return w;
  }

  it("runs delay/send_task calls and answers AsyncResult.get like a Celery worker", async () => {
    const w = await worker();
    const run = await runCeleryClient(redis.url, {
      timeout: 10,
      send: [
        { name: "tasks.add", args: [2, 3] },
        { name: "tasks.greet", args: ["Ann"], kwargs: { greeting: "Hi" }, via: "send_task" },
        { name: "tasks.echo", args: ["héllo ☃ 日本", { a: [1, { b: null, c: [true, 2.5] }] }], kwargs: { k: "ü" } },
        { name: "tasks.boom" },
        { name: "tasks.type_error" },
        { name: "tasks.range_error" },
        { name: "nope.missing", via: "send_task" },
        { name: "tasks.retry_once", args: [7] },
        { name: "tasks.add", args: [1, 1], countdown: 2 },
        { name: "tasks.add", args: [1, 2], countdown: 2, expires: 1 },
      ],
    });
    const [add, greet, echo, boom, typeErr, rangeErr, missingTask, retried, countdown, expired] = run.results as PyResult[];
    expect(add).toMatchObject({ ok: true, value: 5, state: "SUCCESS" });
    expect(greet).toMatchObject({ ok: true, value: "Hi, Ann!" });
    // kwargs reach the handler as this.kwargs (and as a trailing object when no `params` are declared).
    expect(echo).toMatchObject({ ok: true, value: { args: ["héllo ☃ 日本", { a: [1, { b: null, c: [true, 2.5] }] }], kwargs: { k: "ü" }, n: 3 } });
    expect(boom).toMatchObject({ ok: false, type: "ValueError", module: "builtins", args: ["boom"], state: "FAILURE" });
    expect(typeErr).toMatchObject({ ok: false, type: "TypeError", module: "builtins", args: ["bad type"] });
    expect(rangeErr).toMatchObject({ ok: false, type: "ValueError", module: "builtins", args: ["too big"] });
    expect(missingTask).toMatchObject({ ok: false, type: "NotRegistered", args: ["nope.missing"] });
    expect(retried).toMatchObject({ ok: true, value: { value: 7, retries: 1 } });
    expect(retried!.elapsed).toBeGreaterThanOrEqual(0.9);
    expect(countdown).toMatchObject({ ok: true, value: 2 });
    expect(countdown!.elapsed).toBeGreaterThanOrEqual(1.9);
    expect(expired).toMatchObject({ ok: false, type: "TaskRevokedError", args: ["expired"], state: "REVOKED" });
    // The countdown message waited in Redis, not in the worker: nothing of it is left anywhere now.
    expect(await r.llen("celery")).toBe(0);
    expect(await r.zcard("qw:q:celery:celery:active")).toBe(0);
    expect(w.output()).toMatch(/tasks\.add\[[0-9a-f-]+\] succeeded/);
    await w.kill("SIGTERM");
  }, 40_000);

  it("follows Celery's revoke broadcast for a task waiting for its countdown", async () => {
    const w = await worker();
    const sent = await runCeleryClient(redis.url, { no_wait: true, send: [{ name: "tasks.add", args: [4, 4], countdown: 2 }] });
    const id = sent.sent[0]!;
    // Parked until its ETA in qworker's delayed set (taken off kombu's list at once).
    await expect.poll(() => r.zcard("qw:q:celery:celery:delayed"), { timeout: 5000 }).toBe(1);
    const run = await runCeleryClient(redis.url, { revoke: [id], get: [id], timeout: 8 });
    expect(run.results[0]).toMatchObject({ ok: false, type: "TaskRevokedError", args: ["revoked"], state: "REVOKED" });
    expect(w.output()).toContain(`celery revoke for ${id}`);
    await w.kill("SIGTERM");
  }, 30_000);

  it("follows Celery's revoke broadcast for a task waiting in the worker's prefetch", async () => {
    const w = await worker("", { concurrency: 1, prefetch: 3 });
    const sent = await runCeleryClient(redis.url, {
      no_wait: true,
      send: [
        { name: "tasks.slow", args: [4000, "pf-busy"] },
        { name: "tasks.slow", args: [10, "pf-revoked"] },
        { name: "tasks.slow", args: [10, "pf-kept"] },
      ],
    });
    const [busy, revoked, kept] = sent.sent as [string, string, string];
    // The one slot is busy: the other two wait in the prefetch, received (and leased) already.
    await expect.poll(() => [revoked, kept].every((id) => w.output().includes(`tasks.slow[${id}] received`)), { timeout: 8000 }).toBe(true);
    const run = await runCeleryClient(redis.url, { revoke: [revoked], get: [revoked, kept, busy], timeout: 15 });
    expect(run.results[0]).toMatchObject({ ok: false, type: "TaskRevokedError", state: "REVOKED" });
    expect(run.results[1]).toMatchObject({ ok: true, value: "pf-kept", state: "SUCCESS" });
    expect(run.results[2]).toMatchObject({ ok: true, value: "pf-busy" });
    expect(w.output()).toContain(`tasks.slow[${revoked}] revoked while waiting in the prefetch; not run`);
    const ran = readdirSync(outDir).flatMap((f) => readFileSync(path.join(outDir, f), "utf8").split("\n"));
    expect(ran).not.toContain("pf-revoked");
    expect(ran).toContain("pf-kept");
    await w.kill("SIGTERM");
  }, 40_000);

  it("does not lose a Celery task when its qworker worker is SIGKILLed mid-run", async () => {
    const a = await worker("  track_started: true");
    const sent = await runCeleryClient(redis.url, { no_wait: true, send: [{ name: "tasks.slow", args: [2500, "crash-1"] }] });
    const id = sent.sent[0]!;
    // STARTED is stored (track_started) while the task runs: that is the moment we kill its worker.
    await expect.poll(async () => JSON.parse((await r.get(`celery-task-meta-${id}`)) ?? "{}").status, { timeout: 8000 }).toBe("STARTED");
    await a.kill("SIGKILL");
    expect(await r.zcard("qw:q:celery:celery:active")).toBe(1);
    await worker();
    const run = await runCeleryClient(redis.url, { get: [id], timeout: 15 });
    expect(run.results[0]).toMatchObject({ ok: true, value: "crash-1", state: "SUCCESS" });
    const lines = readdirSync(outDir).flatMap((f) => readFileSync(path.join(outDir, f), "utf8").split("\n")).filter((l) => l === "crash-1");
    expect(lines).toHaveLength(1);
    expect(await r.zcard("qw:q:celery:celery:active")).toBe(0);
  }, 40_000);
});
