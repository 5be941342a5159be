/**
 * `qworker dead` and `inspect dead`/`scheduled` on Celery messages a qworker worker holds under a
 * `celery:…` lease: the stored payload is kombu's envelope, so the task name and Celery task id must come
 * from its headers, not from qworker's message fields (they showed `task ?` and only the lease id).
 */
import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { createCeleryClient, type CeleryClient } from "../../src/celery/client.ts";
import { ROOT, startQworkerWorker, type Proc } from "../fixtures/celery/interop.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

const run = promisify(execFile);

async function cli(brokerUrl: string, ...args: string[]): Promise<string> {
  const cwd = mkdtempSync(path.join(os.tmpdir(), "qw-celery-views-cli-"));
  const { stdout } = await run(process.execPath, [path.join(ROOT, "bin", "qworker.js"), ...args, "--broker", brokerUrl], {
    cwd,
    env: { ...process.env, QWORKER_FROM_SOURCE: "1", NO_COLOR: "1", FORCE_COLOR: "0" },
    timeout: 20_000,
  });
  return stdout;
}

describe.skipIf(!redisServerAvailable())("dead and inspect views on Celery messages", () => {
  let server: RedisServerHandle | undefined;
  let worker: Proc | undefined;
  let celery: CeleryClient | undefined;

  afterAll(async () => {
    await worker?.kill();
    await celery?.close();
    await server?.cleanup();
  });

  it("show the Celery task name and task id beside the lease id", async () => {
    server = await startRedisServer();
    const url = server.url;
    celery = await createCeleryClient({ brokerUrl: url });
    worker = startQworkerWorker(url, mkdtempSync(path.join(os.tmpdir(), "qw-celery-views-out-")));
    await worker.waitFor(/celery queues: celery/);

    const failed = await celery.send("tasks.boom", ["kaboom"]);
    expect((await failed.wait({ timeout: 10 })).state).toBe("FAILURE");
    let dead: Record<string, unknown>[] = [];
    await expect
      .poll(
        async () => {
          dead = (await cli(url, "dead", "--json")).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
          return dead.length;
        },
        { timeout: 10_000, interval: 300 },
      )
      .toBe(1);
    expect(dead[0]).toMatchObject({ id: expect.stringMatching(/^celery:/), celeryId: failed.id, queue: "celery:celery", task: "tasks.boom" });

    const table = await cli(url, "dead");
    expect(table).toContain(String(dead[0]!.id));
    expect(table).toContain(`celery ${failed.id}`);
    expect(table).toContain("tasks.boom");

    const inspectDead = JSON.parse(await cli(url, "inspect", "dead", "--json")) as { dead: Record<string, unknown>[] };
    expect(inspectDead.dead).toEqual([expect.objectContaining({ id: dead[0]!.id, celeryId: failed.id, task: "tasks.boom" })]);

    // Parked in the lease queue's delayed set until its countdown ends.
    const parked = await celery.send("tasks.add", [1, 2], { countdown: 30 });
    await expect
      .poll(async () => (JSON.parse(await cli(url, "inspect", "scheduled", "--json")) as { scheduled: Record<string, unknown>[] }).scheduled, { timeout: 10_000, interval: 300 })
      .toEqual([expect.objectContaining({ id: expect.stringMatching(/^celery:/), celeryId: parked.id, task: "tasks.add", retries: 0 })]);
    await worker.kill("SIGTERM");
  }, 60_000);
});
