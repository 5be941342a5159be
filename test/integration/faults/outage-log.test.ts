/**
 * A Redis that is plainly down (SIGKILLed, so every connection is refused and reconnecting) for longer
 * than the watchdog's stall window: the worker logs the outage once when it starts and once when it ends,
 * as docs/reliability.md says. The watchdog's rebuild is for sockets that look healthy and are not; with
 * every connection already reconnecting it has nothing to rebuild and must not claim, every 5 s, that it
 * is rebuilding them.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../../src/broker/redis/index.ts";
import type { Transport } from "../../../src/broker/transport.ts";
import { enqueueNumbered, numbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded } from "../../support/fault-outcomes.ts";
import { spawnWorker, waitUntil } from "../../support/fault-worker.ts";
import { redisServerAvailable, startRedisServer } from "../../support/redis-server.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.skipIf(!redisServerAvailable())("a long Redis outage in the worker's log", () => {
  it("12 s of refused connections: one line when it starts, one when it ends, no rebuild claims", async () => {
    const out = makeOutDir();
    cleanups.push(out.cleanup);
    const redis = await startRedisServer({ appendonly: true });
    cleanups.push(() => redis.cleanup());
    const w = spawnWorker({ broker: redis.url, outDir: out.dir, concurrency: 2 });
    cleanups.push(() => w.kill9());
    await w.ready();

    await redis.kill9();
    await new Promise((r) => setTimeout(r, 12_000));
    expect(w.proc.exitCode).toBeNull();
    await redis.start();

    const t: Transport = createRedisTransport(redis.url);
    await t.connect();
    cleanups.push(() => t.close());
    const ids = numbered("outage-log-", 3);
    await enqueueNumbered(t, ids, { ms: 5 });
    await waitUntil("the tasks sent after the outage to run", 15_000, () => new Set(recorded(out.dir)).size >= ids.length);

    const msgs = w.logs().map((l) => l.msg ?? "");
    expect(msgs.filter((m) => /broker (unreachable|not answering)/.test(m))).toHaveLength(1);
    expect(msgs.filter((m) => /broker (reachable|answering) again/.test(m))).toHaveLength(1);
    expect(msgs.filter((m) => /rebuilding the broker connections/.test(m))).toEqual([]);
  }, 60_000);
});
