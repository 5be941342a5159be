/**
 * The worker records heartbeats store are read back by `inspect workers|stats|active` and by `qworker result`
 * for an active task (the holder's progress). One that is not a worker record (not JSON, another shape,
 * nested too deep) is left out on both brokers, and the live workers are still listed: on the embedded
 * broker an unreadable one failed the whole listing with a SyntaxError; on Redis a JSON one of another
 * shape was listed as a worker (a `waiting` that is not a list broke `qworker result` with a TypeError).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { Transport, WorkerInfo } from "../../src/broker/transport.ts";
import { redisServerAvailable, startRedisServer } from "../support/redis-server.ts";

const info = (id: string): WorkerInfo => ({
  id,
  host: "h",
  pid: 1,
  concurrency: 2,
  pool: "async",
  queues: ["default"],
  startedAt: 1,
  lastBeat: 1,
  processed: 0,
  succeeded: 0,
  failed: 0,
  active: 0,
  version: "0.1.0",
});

const BAD: Record<string, string> = {
  "bad-text": "{not json",
  "bad-null": "null",
  "bad-waiting": JSON.stringify({ ...info("bad-waiting"), waiting: 5 }),
  "bad-deep": JSON.stringify({ ...info("bad-deep"), extra: 0 }).replace('"extra":0', `"extra":${"[".repeat(20_000)}${"]".repeat(20_000)}`),
};

async function listed(t: Transport): Promise<string[]> {
  return (await t.workers()).map((w) => w.id).sort();
}

describe("worker records that are not one are left out", () => {
  it("embedded broker", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qw-worker-records-"));
    const file = join(dir, "broker.db");
    const t = createSqliteTransport(`sqlite://${file}`);
    await t.connect();
    try {
      await t.heartbeat(info("good"), 60_000);
      const db = new Database(file);
      const put = db.prepare("INSERT INTO workers (id, info, last_beat, expires_at) VALUES (?, ?, ?, ?)");
      for (const [id, raw] of Object.entries(BAD)) put.run(id, raw, Date.now(), Date.now() + 60_000);
      db.close();
      expect(await listed(t)).toEqual(["good"]);
    } finally {
      await t.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!redisServerAvailable())("Redis", async () => {
    const server = await startRedisServer();
    const raw = new Redis(server.url);
    const t = createRedisTransport(server.url);
    try {
      await t.connect();
      await t.heartbeat(info("good"), 60_000);
      for (const [id, text] of Object.entries(BAD)) {
        await raw.set(`qw:w:${id}`, text, "PX", 60_000);
        await raw.zadd("qw:workers", Date.now(), id);
      }
      const workers = await t.workers();
      expect(workers.map((w) => w.id)).toEqual(["good"]);
      // The beat time is the broker's, as before.
      expect(workers[0]!.lastBeat).toBe(Number(await raw.zscore("qw:workers", "good")));
    } finally {
      await t.close();
      raw.disconnect();
      await server.cleanup();
    }
  });
});
