/**
 * Nothing is lost when one of qworker's per-queue keys holds another program's data.
 * - A send that names a queue whose ready, delayed or wake key is of another kind is refused before any
 *   task is stored (a script that fails part-way keeps what it wrote: a task stored but never queued never
 *   runs and answers every later send of its id as a duplicate), naming the key and the fix.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { RecoverReport, Transport } from "../../src/broker/transport.ts";
import { buildEnqueueItem } from "../../src/client/build-message.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

let redis: RedisServerHandle;
let raw: Redis;
const opened: Transport[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  raw = new Redis(redis.url);
});

afterAll(async () => {
  await Promise.all(opened.map((t) => t.close()));
  raw?.disconnect();
  await redis?.cleanup();
});

let prefixes = 0;
/** A worker-side transport and a CLI-side one (fail-fast, plain errors) on a prefix of the test's own. */
async function pair(): Promise<{ p: string; t: Transport; cli: Transport }> {
  const p = `wk${++prefixes}:`;
  const t = createRedisTransport(redis.url, { prefix: p });
  const cli = createRedisTransport(redis.url, { prefix: p, failFast: true, commandTimeoutMs: 5000 });
  opened.push(t, cli);
  await t.connect();
  await cli.connect();
  return { p, t, cli };
}

const item = (id: string, opts: { queue?: string; countdown?: number } = {}) =>
  buildEnqueueItem("demo.add", [1, 2], { id, ...opts }, { queue: "a", maxPayloadBytes: 1 << 20 });
const recoverOnce = (t: Transport): Promise<RecoverReport> => t.recover({ maxDeliveries: 5, heartbeatTtlMs: 10_000, deadMax: 1000, deadTtlMs: 0 });
/** Replace `key` with a string: another program's data. */
async function spoil(key: string, value = "x"): Promise<void> {
  await raw.del(key);
  await raw.set(key, value);
}

/** The one report line about `key` (here or already in the report list), and where the bad value went. */
function reportAbout(lines: string[], key: string): { line: string; aside: string } {
  const about = lines.filter((l) => l.startsWith(`${key} held `));
  expect(about, JSON.stringify(lines)).toHaveLength(1);
  const aside = / renamed to (\S+) /.exec(about[0]!)![1]!;
  expect(aside.startsWith(`${key}:poisoned:`)).toBe(true);
  return { line: about[0]!, aside };
}

describe.skipIf(!redisServerAvailable())("a queue key of another kind: the send is refused whole", () => {
  it.each([
    ["ready", "the sorted set of the queue's ready tasks", {}],
    ["delayed", "the sorted set of the queue's delayed tasks", { countdown: 60 }],
    ["wake", "the list that wakes the queue's consumers", {}],
  ])("q:a:%s a string: nothing is stored, the error names the key and the fix; after the sweep the send goes through", async (suffix, want, opts) => {
    const { p, t, cli } = await pair();
    const key = `${p}q:a:${suffix}`;
    await spoil(key);
    // A task for a good queue first: before, it and the bad queue's task were stored, and only the bad
    // queue's write failed, leaving both stored but never queued.
    const batch = [item("b1", { queue: "b" }), item("a1", opts), item("a2", opts)];
    const refused = await cli.enqueue(batch).then(
      () => new Error("not refused"),
      (e: Error) => e,
    );
    for (const id of ["b1", "a1", "a2"]) expect(await raw.exists(`${p}j:${id}`), `j:${id} stored`).toBe(0);
    expect(await raw.zcard(`${p}q:b:ready`)).toBe(0);
    expect(refused.message).toMatch(
      new RegExp(`^Redis at \\S+: ${key} holds the string "x", not ${want}: a running worker sets it aside within a second \\(start one if none runs\\), then send again$`),
    );
    // The worker's transport gets it too (a data error, not an outage).
    const err = await t.enqueue(batch).catch((e: unknown) => e);
    expect(t.isDataError?.(err)).toBe(true);

    // The fix the error names: the sweep sets the key aside, and the same send then queues every task.
    const { aside } = reportAbout((await recoverOnce(t)).poisoned ?? [], key);
    expect(await raw.get(aside)).toBe("x");
    expect((await cli.enqueue(batch)).map((r) => r.duplicate)).toEqual([false, false, false]);
    expect(await raw.zcard(`${p}q:b:ready`)).toBe(1);
    expect(await raw.zcard(`${p}q:a:${suffix === "delayed" ? "delayed" : "ready"}`)).toBe(2);
  });

  it("a queue nothing was sent to yet: the refusal lists the queue, so the sweep finds its key", async () => {
    const { p, t, cli } = await pair();
    await raw.rpush(`${p}q:fresh:ready`, "x");
    await expect(cli.enqueue([item("f1", { queue: "fresh" })])).rejects.toThrow(new RegExp(`${p}q:fresh:ready holds a list, not the sorted set`));
    expect(await raw.exists(`${p}j:f1`)).toBe(0);
    reportAbout((await recoverOnce(t)).poisoned ?? [], `${p}q:fresh:ready`);
    await cli.enqueue([item("f1", { queue: "fresh" })]);
    expect(await raw.zrange(`${p}q:fresh:ready`, 0, -1)).toEqual(["f1"]);
  });
});
