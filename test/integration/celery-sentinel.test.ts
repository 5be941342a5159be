/**
 * Celery interop over Redis Sentinel: a qworker CLI worker whose broker_url is a redis+sentinel:// URL
 * consumes a real Python Celery client's tasks (Debian's celery 5.2, which sends to the current master
 * directly), before and after SENTINEL FAILOVER. Skipped with the reason when /usr/bin/python3 has no celery.
 */
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { celeryMissing, runCeleryClient, startQworkerWorker, type Proc, type PyResult } from "../fixtures/celery/interop.ts";
import { startSentinelSetup, type SentinelSetup } from "../support/redis-sentinel.ts";

const missing = celeryMissing();

describe.skipIf(missing !== undefined)(`Python Celery client → qworker worker through Sentinel${missing ? ` (skipped: ${missing})` : ""}`, () => {
  let s: SentinelSetup;
  let outDir: string;
  const workers: Proc[] = [];

  beforeAll(async () => {
    s = await startSentinelSetup();
    outDir = mkdtempSync(path.join(os.tmpdir(), "qw-celery-sentinel-out-"));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    await s?.cleanup();
  });

  it("runs Celery tasks sent to the master, and keeps running them on the new master after a failover", async () => {
    const w = startQworkerWorker(s.url, outDir);
    workers.push(w);
    await w.waitFor(/celery queues: celery/);

    const before = await runCeleryClient(s.master.url, { timeout: 10, send: [{ name: "tasks.add", args: [2, 3] }] });
    expect(before.results[0] as PyResult).toMatchObject({ ok: true, value: 5, state: "SUCCESS" });

    await s.sync();
    await s.failover();
    expect(await s.masterPort()).toBe(s.replica.port);
    // The worker finds the new master through the sentinel; the client sends there directly.
    const after = await runCeleryClient(s.replica.url, { timeout: 20, send: [{ name: "tasks.add", args: [4, 5] }, { name: "tasks.greet", args: ["Ann"] }] });
    expect(after.results.map((r) => [r.ok, r.value, r.state])).toEqual([
      [true, 9, "SUCCESS"],
      [true, "Hello, Ann!", "SUCCESS"],
    ]);
    expect(w.child.exitCode).toBeNull();
    await w.kill("SIGTERM");
  }, 90_000);
});
