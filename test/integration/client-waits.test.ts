/**
 * An app's wait for a result, on both brokers: a long or endless timeout waits (a Node timer asked for
 * more than about 24.8 days fires at once), a timeout that is not a number of seconds is refused, and
 * close() ends a pending wait and any later use with a "closed" BrokerError instead of hanging or
 * reporting a timeout.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCeleryClient, createClient, defineTask } from "../../src/index.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

/** Whether a promise is still pending after `ms` (it may not reject or resolve by then). */
async function pendingAfter(p: Promise<unknown>, ms: number): Promise<boolean> {
  const still = Symbol("pending");
  const outcome = await Promise.race([p.then(() => "settled", () => "settled"), new Promise((r) => setTimeout(() => r(still), ms))]);
  return outcome === still;
}

const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-client-waits-"));
let redis: RedisServerHandle | undefined;
beforeAll(async () => {
  if (redisServerAvailable()) redis = await startRedisServer();
});
afterAll(async () => {
  await redis?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const brokers: [string, () => string][] = [
  ["sqlite", () => `sqlite://${path.join(dir, "broker.db")}`],
  ...(redisServerAvailable() ? ([["redis", () => redis!.url]] as [string, () => string][]) : []),
];

describe.each(brokers)("a client's result wait on %s", (_kind, url) => {
  it("waits on a timeout longer than a timer can hold, or Infinity, and close() ends the wait with a closed error", async () => {
    const client = await createClient({ brokerUrl: url() });
    const month = client.ref("nobody-1").get({ timeout: 30 * 86_400 });
    const forever = client.ref("nobody-2").get({ timeout: Infinity });
    expect(await pendingAfter(month, 300)).toBe(true);
    expect(await pendingAfter(forever, 0)).toBe(true);
    await client.close();
    for (const p of [month, forever]) {
      const err = await p.then(() => undefined, (e: unknown) => e);
      expect(err).toMatchObject({ code: "E_BROKER", message: expect.stringMatching(/is closed/) });
    }
  });

  it("a wait for a task sent with ignoreResult (options or definition) fails at once instead of at its timeout", async () => {
    const client = await createClient({ brokerUrl: url() });
    try {
      const quiet = defineTask({ name: "t.quiet", ignoreResult: true }, () => "unseen");
      const refs = [
        await client.send("t.any", [], { ignoreResult: true }),
        await client.send(quiet, []),
        ...(await client.sendMany([{ task: "t.any", options: { ignoreResult: true } }])),
      ];
      for (const ref of refs) {
        const started = Date.now();
        await expect(ref.get({ timeout: 30 })).rejects.toMatchObject({ code: "E_RESULT_IGNORED", message: expect.stringContaining(ref.id) });
        expect(Date.now() - started).toBeLessThan(5000);
      }
      // A task sent without it is waited for as before.
      const plain = await client.send("t.any");
      expect(await pendingAfter(plain.get({ timeout: 30 }), 200)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it("refuses a timeout that is not a number of seconds >= 0", async () => {
    const client = await createClient({ brokerUrl: url() });
    try {
      for (const timeout of [Number.NaN, -1, "5" as unknown as number]) {
        await expect(client.ref("nobody-3").get({ timeout })).rejects.toMatchObject({ code: "E_USAGE", message: expect.stringMatching(/^timeout must be a number of seconds/) });
      }
    } finally {
      await client.close();
    }
  });

  it("says it is closed when used after close()", async () => {
    const client = await createClient({ brokerUrl: url() });
    await client.close();
    await expect(client.send("demo.add", [1, 2])).rejects.toMatchObject({ code: "E_BROKER", message: expect.stringMatching(/is closed/) });
    await expect(client.ref("nobody-4").get({ timeout: 1 })).rejects.toMatchObject({ code: "E_BROKER", message: expect.stringMatching(/is closed/) });
  });
});

describe.skipIf(!redisServerAvailable())("the Celery client's result wait", () => {
  it("waits on Infinity, ends on close(), refuses NaN, and says it is closed after close()", async () => {
    const celery = await createCeleryClient({ brokerUrl: redis!.url });
    await expect(celery.result("c-0").get({ timeout: Number.NaN })).rejects.toMatchObject({ code: "E_USAGE" });
    const forever = celery.result("c-1").get({ timeout: Infinity });
    expect(await pendingAfter(forever, 300)).toBe(true);
    await celery.close();
    await expect(forever).rejects.toMatchObject({ code: "E_BROKER", message: expect.stringMatching(/is closed/) });
    await expect(celery.send("tasks.add", [1, 2])).rejects.toMatchObject({ code: "E_BROKER", message: expect.stringMatching(/is closed/) });
  });
});
