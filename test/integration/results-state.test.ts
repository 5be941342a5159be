/**
 * Task state and activity with a real Worker on the embedded (SQLite) broker: states derived while a task
 * waits or runs (RETRY, STARTED with progress), the stored record with masked args, ignoreResult, and the
 * recorder sending each flush's events and counters in one publishActivity call.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import type { ActivityBatch, Transport } from "../../src/broker/transport.ts";
import { statsView } from "../../src/cli/inspect/views.ts";
import { createClient } from "../../src/client/client.ts";
import { configSchema } from "../../src/config/schema.ts";
import { decodeEvent } from "../../src/events/format.ts";
import { startObservers } from "../../src/events/observe.ts";
import { taskStatus } from "../../src/results/status.ts";
import { defineTask, taskContext } from "../../src/index.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { Worker } from "../../src/worker/worker.ts";
import { waitFor } from "../e2e/helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "qw-results-state-"));
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let release: (() => void) | undefined;
let openGate: (() => void) | undefined;
let gate: Promise<void> = Promise.resolve();
let failuresLeft = 0;
const tasks = [
  defineTask({ name: "t.add" }, (x: number, y: number) => x + y),
  defineTask({ name: "t.quiet", ignoreResult: true }, () => "unseen"),
  defineTask({ name: "t.secret", secretArgs: ["token"] }, (_user: string, _kw: { token: string }) => "ok"),
  defineTask({ name: "t.flaky", retry: { max: 2, countdown: 30, jitter: false, backoff: false } }, () => {
    if (failuresLeft-- > 0) throw new Error("not yet");
    return "ok";
  }),
  defineTask({ name: "t.gate" }, async () => gate),
  defineTask({ name: "t.hold" }, async () => {
    taskContext().progress(0.75, "almost");
    await new Promise<void>((r) => (release = r));
    return "held";
  }),
];

let seq = 0;
async function setup(overrides: Record<string, unknown> = {}) {
  const url = `sqlite://${join(dir, `b${++seq}.db`)}`;
  const config = { ...configSchema.parse({ broker_url: url, concurrency: 4, heartbeat_interval: 0.1, events_max_len: 1000, ...overrides }), broker_url: url };
  const registry = new TaskRegistry();
  for (const t of tasks) registry.register(t.name!, t as never, "test");
  const transport = createSqliteTransport(url);
  await transport.connect();
  const batches: ActivityBatch[] = [];
  const publish = transport.publishActivity!.bind(transport);
  transport.publishActivity = async (b) => {
    batches.push(b);
    return publish(b);
  };
  const logger = pino({ level: "silent" });
  const worker = new Worker({ transport, registry, config, logger });
  await worker.start();
  const observers = await startObservers({ worker, transport, registry, config, logger });
  const clientT: Transport = createSqliteTransport(url);
  const client = await createClient({ transport: clientT });
  await clientT.connect();
  cleanups.push(async () => {
    release?.();
    openGate?.();
    await worker.stop();
    await observers.close();
    await transport.close();
  });
  cleanups.push(() => client.close());
  return { client, transport: clientT, batches, metricsPort: observers.metricsPort };
}

describe("task state on the embedded broker", () => {
  it("PENDING while queued, STARTED with progress while running, then SUCCESS with the record", async () => {
    const { client, transport } = await setup();
    expect(await taskStatus(transport, "no-such-id")).toEqual({ id: "no-such-id", state: "PENDING" });
    const held = await client.send("t.hold");
    const running = await waitFor(
      "STARTED with progress",
      async () => {
        const s = await taskStatus(transport, held.id);
        return s.state === "STARTED" && s.progress ? s : undefined;
      },
      5000,
    );
    expect(running).toMatchObject({ task: "t.hold", queue: "default", progress: { fraction: 0.75, note: "almost" }, worker: expect.any(String) });
    release!();
    expect(await held.get({ timeout: 5 })).toBe("held");
    expect(await taskStatus(transport, held.id)).toMatchObject({ state: "SUCCESS", result: "held", argsPreview: "[]", runtimeMs: expect.any(Number) });
    // The stored record's run time is rounded as the task events round it (to 0.1 ms), so the two agree
    // (the record kept performance.now()'s noise digits, 12.048099999999977).
    const stored = JSON.parse((await transport.getResult(held.id))!) as { runtimeMs: number };
    const event = await waitFor(
      "the task-succeeded event",
      async () => (await transport.readEvents!(1000)).map((e) => decodeEvent(e.data)).find((e) => e?.id === held.id && e.type === "task-succeeded"),
      5000,
    );
    expect(stored.runtimeMs).toBe(event!.runtimeMs);
    expect(Math.round(stored.runtimeMs * 10)).toBe(stored.runtimeMs * 10);
  });

  it("RECEIVED, not STARTED, for a task waiting in the worker's prefetch; STARTED once it runs", async () => {
    gate = new Promise<void>((r) => (openGate = r));
    const { client, transport } = await setup({ concurrency: 1, prefetch: 2 });
    const first = await client.send("t.gate");
    await waitFor("the first to start", async () => ((await taskStatus(transport, first.id)).state === "STARTED" ? true : undefined), 5000);
    const next = [await client.send("t.gate"), await client.send("t.gate")];
    // Both are leased to the worker (active in the broker) but only one slot exists, and it is taken.
    for (const ref of next) {
      const s = await waitFor("RECEIVED", async () => {
        const st = await taskStatus(transport, ref.id);
        return st.state === "RECEIVED" ? st : undefined;
      }, 5000);
      expect(s).toMatchObject({ task: "t.gate", worker: expect.any(String) });
      expect(s.startedAt).toBeUndefined();
    }
    expect((await taskStatus(transport, first.id)).state).toBe("STARTED");
    openGate!();
    for (const ref of [first, ...next]) await ref.get({ timeout: 5 });
    expect((await taskStatus(transport, next[1]!.id)).state).toBe("SUCCESS");
    // Its events say the same: received when leased into the prefetch, started only when the slot freed.
    const [received, started] = await waitFor(
      "the waiting task's events",
      async () => {
        const evs = (await transport.readEvents!(1000)).map((e) => decodeEvent(e.data)).filter((e) => e?.id === next[1]!.id);
        const r = evs.find((e) => e?.type === "task-received");
        const st = evs.find((e) => e?.type === "task-started");
        return r && st ? ([r, st] as const) : undefined;
      },
      5000,
    );
    expect(started!.ts - received!.ts).toBeGreaterThanOrEqual(50);
  });

  it("RETRY with the due time while a retry waits", async () => {
    const { client, transport } = await setup();
    failuresLeft = 1;
    const ref = await client.send("t.flaky");
    const s = await waitFor("RETRY", async () => ((await taskStatus(transport, ref.id)).state === "RETRY" ? taskStatus(transport, ref.id) : undefined), 5000);
    expect(s).toMatchObject({ retries: 1, task: "t.flaky" });
    expect(s.dueAt! - Date.now()).toBeGreaterThan(20_000);
  });

  it("masks secret kwargs in the record; ignoreResult stores nothing", async () => {
    const { client, transport } = await setup();
    const secret = await client.send("t.secret", ["ann"], { kwargs: { token: "s3cr3t" } });
    await secret.get({ timeout: 5 });
    const rec = await taskStatus(transport, secret.id);
    expect(rec.argsPreview).toBe('["ann",{"token":"«secret»"}]');
    const quiet = await client.send("t.quiet");
    await waitFor("t.quiet to finish", async () => ((await transport.describeTask!(quiet.id)) === null ? true : undefined), 5000);
    expect(await transport.getResult(quiet.id)).toBeNull();
  });

  it("events and counters of many tasks go out in a few batches, not one call per task", async () => {
    const { client, transport, batches } = await setup();
    const refs = await Promise.all(Array.from({ length: 40 }, (_, i) => client.send("t.add", [i, 1])));
    await Promise.all(refs.map((r) => r.get({ timeout: 10 })));
    const events = await waitFor(
      "40 task-succeeded events",
      async () => {
        const evs = (await transport.readEvents!(1000)).map((e) => decodeEvent(e.data)).filter((e) => e?.type === "task-succeeded");
        return evs.length >= 40 ? evs : undefined;
      },
      5000,
    );
    expect(events[0]).toMatchObject({ task: "t.add", queue: "default", runtimeMs: expect.any(Number) });
    const withEvents = batches.filter((b) => b.events.count > 0);
    expect(withEvents.length).toBeLessThan(40); // 40 tasks × 3 events each went out in fewer calls than tasks
    const stats = await statsView({ limit: 0, minutes: 5 }).fetch(transport, Date.now());
    expect(stats.tasks.find((t) => t.task === "t.add")).toMatchObject({ received: 40, succeeded: 40, failed: 0 });
  });

  it("a task the worker does not know: received then failed (final) in the events, failed in `inspect stats`, task=\"<unregistered>\" in the metrics", async () => {
    gate = new Promise<void>((r) => (openGate = r));
    const { client, transport, metricsPort } = await setup({ concurrency: 1, prefetch: 1, metrics_port: 0, metrics_host: "127.0.0.1" });
    expect(metricsPort).toBeDefined();
    // One taken into a free slot, one taken into the prefetch while the slot is busy (failed on receipt).
    const idle = await client.send("no.such", [1]);
    await expect(idle.get({ timeout: 5 })).rejects.toThrow(/not registered/);
    const busy = await client.send("t.gate");
    await waitFor("the gate task to start", async () => ((await taskStatus(transport, busy.id)).state === "STARTED" ? true : undefined), 5000);
    const prefetched = await client.send("no.such", [2]);
    await expect(prefetched.get({ timeout: 5 })).rejects.toThrow(/not registered/);
    openGate!();
    await busy.get({ timeout: 5 });

    for (const ref of [idle, prefetched]) {
      const evs = await waitFor(
        `the events of ${ref.id}`,
        async () => {
          const mine = (await transport.readEvents!(1000)).map((e) => decodeEvent(e.data)).filter((e) => e?.id === ref.id);
          return mine.length >= 2 ? mine : undefined;
        },
        5000,
      );
      expect(evs.map((e) => e!.type)).toEqual(["task-received", "task-failed"]);
      expect(evs[1]).toMatchObject({ task: "no.such", queue: "default", final: true, runtimeMs: 0, error: { type: "NotRegisteredError" } });
    }
    const stats = await waitFor(
      "no.such in the stats",
      async () => {
        const s = await statsView({ limit: 0, minutes: 5 }).fetch(transport, Date.now());
        const row = s.tasks.find((t) => t.task === "no.such");
        return row && row.failed >= 2 ? row : undefined;
      },
      5000,
    );
    expect(stats).toMatchObject({ received: 2, succeeded: 0, failed: 2, failureRate: 1 });
    // The worker's heartbeat (what `inspect workers` shows) agrees: processed counts every finished task,
    // the failures with the success (it counted successes only, so it read "processed 1, failed 2").
    const row = await waitFor(
      "the worker's counts in its heartbeat",
      async () => {
        const [w] = await transport.workers();
        return w && w.processed >= 3 ? w : undefined;
      },
      5000,
    );
    expect(row).toMatchObject({ processed: 3, succeeded: 1, failed: 2 });

    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    expect(metrics).toContain('qworker_tasks_received_total{task="<unregistered>",queue="default"} 2');
    expect(metrics).toContain('qworker_tasks_failed_total{task="<unregistered>",queue="default"} 2');
    expect(metrics).not.toContain('task="no.such"');
  });
});
