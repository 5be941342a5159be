/**
 * qworker as a Celery producer: `qworker send --celery` / `qworker result --celery` and the library
 * client against a real Celery 5.2 worker (`python3 -m celery worker --pool=solo`) on a private Redis.
 * Skipped with the reason when /usr/bin/python3 has no celery.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCeleryClient, CeleryTaskError, type CeleryClient } from "../../src/celery/index.ts";
import { startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { celeryMissing, ROOT, startCeleryWorker, type Proc } from "../fixtures/celery/interop.ts";

const missing = celeryMissing();

function qworker(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(ROOT, "bin", "qworker.js"), ...args], {
    env: { ...process.env, QWORKER_FROM_SOURCE: "1", NO_COLOR: "1" },
    encoding: "utf8",
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(missing !== undefined)(`qworker sender → real Celery worker${missing ? ` (skipped: ${missing})` : ""}`, () => {
  let redis: RedisServerHandle;
  let celery: Proc;
  let client: CeleryClient;

  beforeAll(async () => {
    redis = await startRedisServer();
    celery = startCeleryWorker(redis.url);
    client = await createCeleryClient({ brokerUrl: redis.url });
    await celery.waitFor(/ready\./, 30_000);
  }, 40_000);

  afterAll(async () => {
    await client?.close();
    await celery?.kill();
    await redis?.cleanup();
  });

  it("qworker send --celery is executed by Celery and qworker result --celery shows the result", () => {
    const sent = qworker(["send", "--celery", "tasks.add", "--args", "[2, 3]", "--broker", redis.url, "--wait", "15"]);
    expect(sent.stderr).toBe("");
    expect(sent.status).toBe(0);
    const [id, value] = sent.stdout.trim().split("\n");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(value).toBe("5");
    const shown = qworker(["result", "--celery", id!, "--wait", "5", "--json", "--broker", redis.url]);
    expect(shown.status).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, state: "SUCCESS", result: 5 });
    // Only the Celery worker consumes this Redis: the value can only have come from it.
    expect(celery.child.exitCode).toBeNull();
  }, 30_000);

  it("qworker send --celery --id names the Celery task (it was dropped for a fresh UUID)", () => {
    const sent = qworker(["send", "--celery", "tasks.add", "--args", "[4, 5]", "--id", "my-celery-id-1", "--broker", redis.url, "--wait", "15"]);
    expect(sent.stderr).toBe("");
    expect(sent.stdout.trim().split("\n")).toEqual(["my-celery-id-1", "9"]);
    const shown = qworker(["result", "--celery", "my-celery-id-1", "--json", "--broker", redis.url]);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id: "my-celery-id-1", state: "SUCCESS", result: 9 });
  }, 30_000);

  it("carries kwargs, unicode and nested JSON, countdowns, Celery retries and exceptions", async () => {
    const started = Date.now();
    const greet = await client.send("tasks.greet", ["Zoë"], { kwargs: { greeting: "Grüß dich" } });
    const payload = { nested: { list: [1, 2.5, null, true, { deep: ["☃", "日本語"] }] }, empty: {} };
    const echo = await client.send("tasks.echo", ["héllo", payload], { kwargs: { k: "ü" } });
    const later = await client.send("tasks.add", [10, 20], { countdown: 2 });
    const retried = await client.send("tasks.retry_once", ["r"]);
    const boom = await client.send("tasks.boom", ["kaboom"]);

    expect(await greet.get({ timeout: 10 })).toBe("Grüß dich, Zoë!");
    expect(await echo.get({ timeout: 10 })).toEqual({ args: ["héllo", payload], kwargs: { k: "ü" } });
    expect(await retried.get({ timeout: 10 })).toEqual({ value: "r", retries: 1 });
    const err = await boom.get({ timeout: 10 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CeleryTaskError);
    expect((err as CeleryTaskError).pythonClass).toBe("builtins.ValueError");
    expect((err as CeleryTaskError).message).toBe("kaboom");
    expect(await later.get({ timeout: 10 })).toBe(30);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
  }, 30_000);
});
