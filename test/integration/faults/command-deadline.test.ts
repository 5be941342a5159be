/**
 * An app's client (and the CLI, which uses the same fail-fast transport) talking to a Redis that stops
 * answering after it connected, or goes away: each call ends within command_timeout with one line naming
 * the server, instead of waiting for ever or reporting ioredis's "max retries per request" message.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createCeleryClient, createClient, type Client } from "../../../src/index.ts";
import { BrokerError } from "../../../src/errors.ts";
import { rawCommand, redisServerAvailable, startRedisServer, type RedisServerHandle } from "../../support/redis-server.ts";
import { within } from "../../support/within.ts";

function errorOf(out: Awaited<ReturnType<typeof within>>): Error {
  expect(out).not.toBe("hung");
  expect(out).toHaveProperty("error");
  return (out as { error: Error }).error;
}

describe.skipIf(!redisServerAvailable())("commands of a client whose Redis stops answering", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** A private Redis, a config file naming it with that command_timeout, and a client reading that file. */
  async function setUp(commandTimeout = 0.5): Promise<{ redis: RedisServerHandle; client: Client; configPath: string }> {
    const redis = await startRedisServer();
    cleanups.push(() => redis.cleanup());
    // A stopped server must not outlive a failed test: SIGCONT first, then cleanup's shutdown.
    cleanups.push(() => {
      if (redis.pid !== undefined) process.kill(redis.pid, "SIGCONT");
    });
    const dir = mkdtempSync(join(tmpdir(), "qworker-deadline-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const configPath = join(dir, "qworker.yaml");
    writeFileSync(configPath, `broker_url: ${redis.url}\ncommand_timeout: ${commandTimeout}\n`);
    const client = await createClient({ configPath });
    cleanups.push(() => within(client.close(), 2000).then(() => {}));
    return { redis, client, configPath };
  }

  it("a frozen Redis: the send fails after command_timeout in one line, and works again once Redis is back", async () => {
    const { redis, client } = await setUp();
    await client.send("demo.add", [1, 2]);
    process.kill(redis.pid!, "SIGSTOP");
    const started = Date.now();
    const err = errorOf(await within(client.send("demo.add", [3, 4]), 5000));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err).toBeInstanceOf(BrokerError);
    expect((err as BrokerError).code).toBe("E_BROKER");
    expect(err.message).toMatch(new RegExp(`^Redis at redis://127\\.0\\.0\\.1:${redis.port}/? did not answer within 0\\.5 s`));
    expect(err.message).toContain("may still happen");
    expect(err.message).not.toContain("\n");

    process.kill(redis.pid!, "SIGCONT");
    const ref = await client.send("demo.add", [5, 6]);
    expect(ref.id).toBeTruthy();
    // What the message warns about: the send that timed out was executed when Redis woke up.
    const [counts] = await client.transport.stats(["default"]);
    expect(counts?.ready).toBe(3);
  });

  it("a frozen Redis: a result lookup fails the same way", async () => {
    const { redis, client } = await setUp();
    const ref = await client.send("demo.add", [1, 2]);
    process.kill(redis.pid!, "SIGSTOP");
    const err = errorOf(await within(ref.state(), 5000));
    expect(err.message).toMatch(/did not answer within 0\.5 s/);
  });

  it("a Redis restart of half a second: a send made meanwhile waits for it and lands", async () => {
    const { redis, client } = await setUp(10);
    await client.send("demo.add", [1, 2]);
    await redis.kill9();
    const sending = within(client.send("demo.add", [3, 4]), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    await redis.start();
    const out = await sending;
    expect(out).toHaveProperty("value");
    const [counts] = await client.transport.stats(["default"]);
    // The first task went with the killed server (no persistence); the one sent during the restart is there.
    expect(counts?.ready).toBe(1);
  });

  it("the Celery client: a send made during a half-second restart lands too", async () => {
    const { redis, configPath } = await setUp(10);
    const celery = await createCeleryClient({ configPath });
    cleanups.push(() => within(celery.close(), 2000).then(() => {}));
    await redis.kill9();
    const sending = within(celery.send("tasks.add", [3, 4]), 10_000);
    await new Promise((r) => setTimeout(r, 500));
    await redis.start();
    expect(await sending).toHaveProperty("value");
    expect(await rawCommand(redis.port, ["LLEN", "celery"])).toBe(":1");
  });

  it("a Redis that went away: after a few seconds of reconnecting, one line naming it, not ioredis's retry-limit message", async () => {
    const { redis, client } = await setUp(10);
    await client.send("demo.add", [1, 2]);
    await redis.kill9();
    const err = errorOf(await within(client.send("demo.add", [3, 4]), 10_000));
    expect(err).toBeInstanceOf(BrokerError);
    expect(err.message).toMatch(new RegExp(`^lost the connection to Redis at redis://127\\.0\\.0\\.1:${redis.port}/? and could not reconnect`));
    expect(err.message).not.toMatch(/maxRetriesPerRequest/);
  });

  it("the Celery client: a frozen Redis fails its send and its result lookup in one line", async () => {
    const { redis, configPath } = await setUp();
    const celery = await createCeleryClient({ configPath });
    cleanups.push(() => within(celery.close(), 2000).then(() => {}));
    const ref = await celery.send("tasks.add", [1, 2]);
    process.kill(redis.pid!, "SIGSTOP");
    expect(errorOf(await within(celery.send("tasks.add", [3, 4]), 5000)).message).toMatch(/^Redis at .* did not answer within 0\.5 s/);
    expect(errorOf(await within(ref.state(), 5000)).message).toMatch(/did not answer within 0\.5 s/);
  });
});
