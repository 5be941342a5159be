/**
 * S6: a Sentinel failover under a running worker. The worker and the producer know the deployment only by
 * its sentinel and master name (redis+sentinel://). Mid-run the replica is promoted (SENTINEL FAILOVER)
 * and the old master demoted. The worker must not exit, must move to the new master by itself, and every
 * task enqueued before the failover must run.
 *
 * Redis replicates asynchronously, so what the worker wrote to the old master between the replica's
 * promotion and the sentinel's announcing it (about a second: Sentinel confirms the promotion by polling
 * INFO once a second) is lost when the old master resyncs as a replica: the tasks those settles and
 * reserves concerned run again. That is what a failover may cost, and no more: the duplicates are bounded
 * by the work done during the switch, never the whole run.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createTransport } from "../../../src/broker/factory.ts";
import type { Transport } from "../../../src/broker/transport.ts";
import { finishAfterFailover } from "../../support/after-failover.ts";
import { enqueueNumbered, numbered } from "../../support/fault-enqueue.ts";
import { makeOutDir, recorded } from "../../support/fault-outcomes.ts";
import { spawnWorker, waitUntil } from "../../support/fault-worker.ts";
import { redisServerAvailable } from "../../support/redis-server.ts";
import { startSentinelSetup } from "../../support/redis-sentinel.ts";

const N = Number(process.env.QWORKER_FAULT_N ?? 1500);
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.skipIf(!redisServerAvailable())("S6: Sentinel failover under a running worker", () => {
  it("promotes the replica mid-run: the worker follows it, nothing enqueued before is lost", async () => {
    const out = makeOutDir();
    cleanups.push(out.cleanup);
    const s = await startSentinelSetup();
    cleanups.push(() => s.cleanup());
    const t: Transport = await createTransport(s.url);
    await t.connect();
    cleanups.push(() => t.close());

    const ids = numbered("s6-", N);
    // 20 ms tasks on 10 slots (about 500 a second): the run outlasts the switch (about a second) by far.
    await enqueueNumbered(t, ids, { ms: 20 });
    // Only writes the replica has can survive the switch: the test is about the worker, not about that.
    await s.sync();
    // A short lease, so a task whose settle the old master lost is handed back within seconds.
    const w = spawnWorker({ broker: s.url, outDir: out.dir, concurrency: 10, env: { QWORKER_LEASE_TIMEOUT: "6" } });
    cleanups.push(() => w.kill9());
    await waitUntil("30 % of the tasks to finish", 60_000, () => recorded(out.dir).length >= N * 0.3);

    const beforeSwitch = recorded(out.dir).length;
    await s.failover();
    const duringSwitch = recorded(out.dir).length - beforeSwitch;
    expect(await s.masterPort()).toBe(s.replica.port);
    const result = await finishAfterFailover({ t, w, outDir: out.dir, ids, latePrefix: "s6-late-" });
    if (process.env.FAULT_DEBUG) console.log({ extraRuns: result.extraRuns, duringSwitch }, w.stderr());
    // Runs again: at most what ran while the sentinel switched masters (the worker's connections leave the
    // old master when the sentinel announces the new one), plus what was in flight then (10 slots and their
    // prefetch); and no task more than once more.
    expect(result.extraRuns).toBeLessThanOrEqual(duringSwitch + 100);
    expect(Math.max(0, ...result.duplicates.values())).toBeLessThanOrEqual(1);
  }, 180_000);
});
