/**
 * A result wait on Redis must not miss a result that was published while its subscriber connection was
 * gone. Redis drops a subscriber that one message pushes past `client-output-buffer-limit pubsub` (32 MB
 * by default; lowered to 1 MB here to keep the test fast), so a big result was stored, its PUBLISH lost,
 * and `qworker result --wait`, `send --wait` and an app's `ref.get()` reported a timeout for a task that
 * had succeeded. A connection killed between SUBSCRIBE and PUBLISH loses the message the same way. Both
 * for qworker's own results (stored and published by settle.lua, as a worker does) and for Celery's (SET
 * then PUBLISH, as Celery's Redis backend does).
 */
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { createCeleryClient, createClient } from "../../src/index.ts";
import { encodeResult } from "../../src/results/record.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

/** Bigger than the 1 MB pubsub limit set below. */
const BIG = 2 * 1024 * 1024;

describe.skipIf(!redisServerAvailable())("a Redis result wait whose subscriber lost the PUBLISH", () => {
  let server: RedisServerHandle;
  let raw: Redis;
  /** Stores and publishes results the way a worker does (settle.lua). */
  let worker: Transport;

  beforeAll(async () => {
    server = await startRedisServer();
    raw = new Redis(server.url);
    worker = createRedisTransport(server.url);
    await worker.connect();
  });
  afterAll(async () => {
    raw?.disconnect();
    await worker?.close();
    await server?.cleanup();
  });
  beforeEach(async () => {
    await raw.config("SET", "client-output-buffer-limit", "pubsub 1mb 1mb 0");
  });

  /** How many times redis-server has logged dropping a client for its output buffer. */
  const drops = () => server.logTail().split("\n").filter((line) => line.includes("for overcoming of output buffer limits")).length;

  /** Resolves once `channel` has a subscriber, i.e. the wait has subscribed and is waiting for the PUBLISH. */
  async function subscribed(channel: string): Promise<void> {
    await expect.poll(async () => ((await raw.call("PUBSUB", "NUMSUB", channel)) as [string, number])[1], { timeout: 5000, interval: 20 }).toBe(1);
  }

  /** A task enqueued and leased, then settled with `result` stored and published, as a worker settles it. */
  async function leased(): Promise<{ id: string; settle: (result: string) => Promise<void> }> {
    const id = `big-${randomUUID()}`;
    const queue = `q-${randomUUID().slice(0, 8)}`;
    await worker.enqueue([{ id, queue, priority: 0, payload: "{}" }]);
    const [r] = await worker.reserve({ queues: [queue], max: 1, leaseMs: 30_000, workerId: "w-big", waitMs: 0 });
    expect(r?.id).toBe(id);
    return {
      id,
      settle: async (result) => {
        expect(await worker.settle([{ id, token: r!.token, queue, outcome: "SUCCESS", result, resultTtlMs: 60_000 }])).toEqual([id]);
      },
    };
  }

  const celeryMeta = (id: string, result: unknown) =>
    JSON.stringify({ status: "SUCCESS", result, traceback: null, children: [], date_done: new Date().toISOString(), task_id: id });

  it("ref.get() resolves with a result larger than the subscriber's pubsub output buffer limit", async () => {
    const client = await createClient({ brokerUrl: server.url });
    try {
      const task = await leased();
      const value = "y".repeat(BIG);
      const got = client.ref<string>(task.id).get({ timeout: 8 });
      await subscribed(`qw:r:${task.id}`);
      const dropsBefore = drops();
      await task.settle(encodeResult({ id: task.id, state: "SUCCESS", result: value }));
      expect(await got).toBe(value);
      // The case at hand: Redis did drop the subscriber for this message.
      expect(drops()).toBe(dropsBefore + 1);
    } finally {
      await client.close();
    }
  });

  it("waitForResult resolves although its subscriber was killed between SUBSCRIBE and PUBLISH, and so do the other waits", async () => {
    const waiter = createRedisTransport(server.url, { failFast: true });
    await waiter.connect();
    try {
      const [a, b] = [await leased(), await leased()];
      const waits = [waiter.waitForResult(a.id, 8000), waiter.waitForResult(b.id, 8000)];
      await subscribed(`qw:r:${a.id}`);
      await subscribed(`qw:r:${b.id}`);
      await raw.client("KILL", "TYPE", "pubsub");
      // The results land while nobody is subscribed (ioredis waits at least 50 ms before reconnecting).
      expect(((await raw.call("PUBSUB", "NUMSUB", `qw:r:${a.id}`)) as [string, number])[1]).toBe(0);
      await a.settle('{"state":"SUCCESS","result":"a"}');
      await b.settle('{"state":"SUCCESS","result":"b"}');
      expect(await Promise.all(waits)).toEqual(['{"state":"SUCCESS","result":"a"}', '{"state":"SUCCESS","result":"b"}']);
    } finally {
      await waiter.close();
    }
  });

  it("a wait whose SUBSCRIBE was refused fails, and the next wait on that id subscribes again", async () => {
    const waiter = createRedisTransport(server.url, { failFast: true });
    await waiter.connect();
    try {
      const task = await leased();
      await raw.call("ACL", "SETUSER", "default", "-subscribe");
      try {
        await expect(waiter.waitForResult(task.id, 5000)).rejects.toThrow(/NOPERM|permission/i);
      } finally {
        await raw.call("ACL", "SETUSER", "default", "+subscribe");
      }
      // Before, the refused channel stayed registered: this wait counted on a subscription that never was,
      // and missed the PUBLISH.
      const got = waiter.waitForResult(task.id, 8000);
      await subscribed(`qw:r:${task.id}`);
      await task.settle('{"state":"SUCCESS","result":"again"}');
      expect(await got).toBe('{"state":"SUCCESS","result":"again"}');
    } finally {
      await waiter.close();
    }
  });

  it("a Celery result wait resolves with a result larger than the pubsub limit", async () => {
    const celery = await createCeleryClient({ brokerUrl: server.url });
    try {
      const id = `c-${randomUUID()}`;
      const value = "z".repeat(BIG);
      const got = celery.result(id).get({ timeout: 8 });
      await subscribed(`celery-task-meta-${id}`);
      const meta = celeryMeta(id, value);
      await raw.multi().set(`celery-task-meta-${id}`, meta).publish(`celery-task-meta-${id}`, meta).exec();
      expect(await got).toBe(value);
    } finally {
      await celery.close();
    }
  });

  it("a Celery result wait resolves although its subscriber was killed between SUBSCRIBE and PUBLISH", async () => {
    const celery = await createCeleryClient({ brokerUrl: server.url });
    try {
      const id = `c-${randomUUID()}`;
      const got = celery.result(id).get({ timeout: 8 });
      await subscribed(`celery-task-meta-${id}`);
      await raw.client("KILL", "TYPE", "pubsub");
      const meta = celeryMeta(id, 42);
      await raw.multi().set(`celery-task-meta-${id}`, meta).publish(`celery-task-meta-${id}`, meta).exec();
      expect(await got).toBe(42);
    } finally {
      await celery.close();
    }
  });

  it("a Celery result wait resolves although the read after its subscriber's reconnect failed once", async () => {
    const celery = await createCeleryClient({ brokerUrl: server.url });
    try {
      const id = `c-${randomUUID()}`;
      const got = celery.result(id).get({ timeout: 6 });
      await subscribed(`celery-task-meta-${id}`);
      // The catch-up read is an MGET: refused (NOPERM) until allowed again below, it fails as a read on a
      // Cluster master that is down does, while the subscriber's reconnect succeeds.
      await raw.call("ACL", "LOG", "RESET");
      await raw.call("ACL", "SETUSER", "default", "-mget");
      try {
        await raw.client("KILL", "TYPE", "pubsub");
        const meta = celeryMeta(id, 43);
        await raw.multi().set(`celery-task-meta-${id}`, meta).publish(`celery-task-meta-${id}`, meta).exec();
        await expect
          .poll(async () => ((await raw.call("ACL", "LOG")) as unknown[][]).some((entry) => entry.includes("mget")), { timeout: 5000, interval: 20 })
          .toBe(true);
      } finally {
        await raw.call("ACL", "SETUSER", "default", "+mget");
      }
      expect(await got).toBe(43);
    } finally {
      await celery.close();
    }
  });
});
