/**
 * The embedded transport answers reserve() without I/O. A worker draining a backlog on it must still let
 * its event loop turn between batches, so finished tasks are settled (and their results stored) as it goes
 * instead of all at once when the queue is empty.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { SettleItem, Transport } from "../../src/broker/transport.ts";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import { buildEnqueueItem } from "../../src/client/build-message.ts";
import { configSchema } from "../../src/config/schema.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { Worker } from "../../src/worker/worker.ts";
import { waitFor } from "../e2e/helpers.ts";

const N = 4000;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("worker on the embedded broker with a backlog", () => {
  it("settles as it goes, not when the queue is empty", { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "qw-backlog-"));
    dirs.push(dir);
    const url = `sqlite://${join(dir, "broker.db")}`;
    const producer = createSqliteTransport(url);
    await producer.connect();
    for (let i = 0; i < N; i += 500) {
      const items = Array.from({ length: 500 }, (_, k) => buildEnqueueItem("bl.noop", [i + k], {}, { queue: "default", maxPayloadBytes: 1 << 20 }));
      await producer.enqueue(items);
    }

    const registry = new TaskRegistry();
    registry.register("bl.noop", defineTask("bl.noop", () => undefined) as never, "test");
    const config = configSchema.parse({ broker_url: url, concurrency: 10 });
    const inner = createSqliteTransport(url);
    await inner.connect();
    // Per settle call: how many tasks it carried and how many were still waiting in the queue.
    const calls: { n: number; ready: number }[] = [];
    const transport: Transport = new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === "settle") {
          return async (items: SettleItem[]) => {
            const [depth] = await producer.stats(["default"]);
            calls.push({ n: items.length, ready: depth?.ready ?? 0 });
            return target.settle(items);
          };
        }
        const v: unknown = Reflect.get(target, prop, receiver);
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const worker = new Worker({ transport, registry, config, logger: pino({ level: "silent" }) });
    try {
      await worker.start();
      await waitFor("the backlog drained", () => calls.reduce((s, c) => s + c.n, 0) >= N || undefined, 30_000);
      // Settled while most of the queue was still waiting, in many calls, not in one at the end.
      expect(calls.length).toBeGreaterThan(10);
      expect(calls[0]!.ready).toBeGreaterThan(N / 2);
      expect(Math.max(...calls.map((c) => c.n))).toBeLessThan(N / 4);
    } finally {
      await worker.stop();
      await inner.close();
      await producer.close();
    }
  });
});
