/**
 * `qworker inspect stats` when a minute's counters (<prefix>m:<minute>) hold data qworker did not write.
 * A past minute is never written again, so the write path's repair (counters.lua) never reaches it: before,
 * one such key failed the whole command (WRONGTYPE) until it expired, up to 2 hours, and a field that is
 * no integer printed NaN. Now that minute or field is left out, the rest is shown, and one line names it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../e2e/helpers.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

let redis: RedisServerHandle;
let raw: Redis;
const dir = mkdtempSync(join(tmpdir(), "qworker-stats-bad-keys-"));

beforeAll(async () => {
  redis = await startRedisServer();
  raw = new Redis(redis.url);
});

afterAll(async () => {
  raw?.disconnect();
  await redis?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

interface Report {
  tasks: { task: string; received: number; succeeded: number; avgRuntimeMs: number | null }[];
  notes?: string[];
}

describe.skipIf(!redisServerAvailable())("inspect stats with a minute's counters of another kind", { timeout: 60_000 }, () => {
  it("shows the other minutes, leaves the bad key and the bad field out, and names each in one line", async () => {
    const minute = Math.floor(Number((await raw.time())[0]) / 60);
    await raw.hset(`qw:m:${minute - 1}`, { "received:demo.add": "3", "succeeded:demo.add": "3", "runtime_ms:demo.add": "30" });
    await raw.set(`qw:m:${minute - 2}`, "another program's data");
    await raw.hset(`qw:m:${minute - 3}`, { "received:demo.other": "2", "succeeded:demo.other": "abc" });

    const json = await runCli(["inspect", "stats", "--json", "--minutes", "10", "--broker", redis.url], { cwd: dir });
    expect(json.code, json.stderr).toBe(0);
    const report = JSON.parse(json.stdout) as Report;
    expect(report.tasks.find((t) => t.task === "demo.add")).toMatchObject({ received: 3, succeeded: 3, avgRuntimeMs: 10 });
    expect(report.tasks.find((t) => t.task === "demo.other")).toMatchObject({ received: 2, succeeded: 0 });
    expect(report.notes).toHaveLength(2);
    expect(report.notes!.filter((n) => n.includes(`qw:m:${minute - 2}`))).toHaveLength(1);
    expect(report.notes!.find((n) => n.includes(`qw:m:${minute - 3}`))).toContain('"succeeded:demo.other"');

    const text = await runCli(["inspect", "stats", "--minutes", "10", "--broker", redis.url], { cwd: dir });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain("demo.add");
    expect(text.stdout).not.toContain("NaN");
    const lines = text.stdout.split("\n");
    expect(lines.filter((l) => l.includes(`qw:m:${minute - 2}`))).toEqual([expect.stringMatching(/holds a string, not a hash.*DEL/)]);
    expect(lines.filter((l) => l.includes(`qw:m:${minute - 3}`))).toHaveLength(1);
    // Reading repairs nothing and changes nothing: the key is left for a person to look at.
    expect(await raw.get(`qw:m:${minute - 2}`)).toBe("another program's data");
  });

  it("a bad key that is the only data in the window: no activity, and the line about the key", async () => {
    const minute = Math.floor(Number((await raw.time())[0]) / 60);
    await raw.flushdb();
    await raw.rpush(`qw:m:${minute - 1}`, "x");
    const text = await runCli(["inspect", "stats", "--broker", redis.url], { cwd: dir });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain("no task activity recorded");
    expect(text.stdout.split("\n").filter((l) => l.includes(`qw:m:${minute - 1}`))).toEqual([expect.stringContaining("holds a list, not a hash")]);
  });
});
