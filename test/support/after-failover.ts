/**
 * The second half of a failover fault test (S6 Sentinel, S7 Cluster), once the broker has switched masters
 * under a running worker: the worker consumes again and finishes every task without exiting, a task sent
 * after the switch runs too (the sender's connection followed it), the queue ends empty on the new master,
 * and a SIGTERM still ends the worker cleanly. Returns the tally; each test judges the duplicates itself,
 * because what a failover may cost differs (Sentinel's can lose writes, CLUSTER FAILOVER's cannot).
 */
import { expect } from "vitest";
import type { Transport } from "../../src/broker/transport.ts";
import { enqueueNumbered, numbered } from "./fault-enqueue.ts";
import { recorded, tally, type Tally } from "./fault-outcomes.ts";
import { waitUntil, type WorkerProcess } from "./fault-worker.ts";

export async function finishAfterFailover(opts: { t: Transport; w: WorkerProcess; outDir: string; ids: string[]; latePrefix: string }): Promise<Tally> {
  const { t, w, outDir, ids } = opts;
  const back = recorded(outDir).length;
  await waitUntil("the worker to consume after the switch", 20_000, () => recorded(outDir).length >= back + 20);
  await waitUntil("every task to finish", 90_000, () => new Set(recorded(outDir)).size >= ids.length);
  expect(w.proc.exitCode).toBeNull();

  const late = numbered(opts.latePrefix, 5);
  await enqueueNumbered(t, late, { ms: 1 });
  await waitUntil("tasks sent after the switch to run", 20_000, () => late.every((id) => recorded(outDir).includes(id)));
  await waitUntil("the queue to empty on the new master", 30_000, async () => {
    const [q] = await t.stats(["default"]);
    return q !== undefined && q.ready === 0 && q.active === 0 && q.delayed === 0;
  });

  w.term();
  expect(await w.exited).toBe(0);
  const result = tally(outDir, [...ids, ...late]);
  expect(result.lost).toEqual([]);
  expect(result.unexpected).toEqual([]);
  return result;
}
