import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { ActivityBatch, Transport } from "../../src/broker/transport.ts";
import { ActivityPublishError } from "../../src/errors.ts";
import { decodeEvent } from "../../src/events/format.ts";
import { ActivityRecorder } from "../../src/events/recorder.ts";
import type { TaskMessage } from "../../src/protocol/message.ts";
import { argsPreview, MASK } from "../../src/results/args.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { WorkerEvents } from "../../src/worker/events.ts";
import { preview } from "../../src/worker/format.ts";
import type { Logger } from "pino";
import { eventTexts } from "../support/event-lines.ts";

const NOW = Date.UTC(2030, 0, 1, 12, 0, 59, 900);
const WORKER = 'h"ost.1.a';
const logger = { warn() {}, debug() {} } as unknown as Logger;

const msg = (extra: Partial<TaskMessage> = {}): TaskMessage => ({
  v: 1,
  id: "3951a6f5-e145-45db-9577-cb6abefa805b",
  task: "demo.add",
  args: [2, 3],
  kwargs: {},
  queue: "default",
  priority: 0,
  retries: 0,
  sentAt: NOW - 40,
  ...extra,
});

/** The events as the recorder used to build them: objects, then JSON.stringify (docs/events.md). */
/** What a broker stores of a batch: a copy, as the recorder reuses a stored payload's memory. */
const stored = (b: ActivityBatch): ActivityBatch => ({ ...b, events: { data: Buffer.from(b.events.data), count: b.events.count } });

const base = (m: TaskMessage, type: string) => ({ v: 1, type, id: m.id, task: m.task, queue: m.queue, ts: Date.now(), worker: WORKER });

describe("ActivityRecorder", () => {
  let batches: ActivityBatch[];
  let fail: boolean;
  let rec: ActivityRecorder;
  let events: WorkerEvents;
  const registry = new TaskRegistry();
  registry.register("demo.add", defineTask("demo.add", (a: number, b: number) => a + b) as never, "t");
  registry.register("demo.login", defineTask({ name: "demo.login", secretArgs: [1] }, (_u: string, _p: string) => true) as never, "t");

  beforeEach(() => {
    vi.useFakeTimers({ now: NOW });
    batches = [];
    fail = false;
    const transport = {
      publishActivity: async (b: ActivityBatch) => {
        if (fail) throw new Error("down");
        batches.push(stored(b));
      },
    } as unknown as Transport;
    events = new WorkerEvents();
    rec = new ActivityRecorder({ workerId: WORKER, events, transport, registry, logger, eventsMaxLen: 100 });
  });
  afterEach(async () => {
    await rec.close();
    vi.useRealTimers();
  });

  it("writes the same JSON text as JSON.stringify of the event objects", async () => {
    const odd = msg({ id: 'a"b\\c\nd\u2028😀\ud800', task: 'x"y', queue: "q\\", retries: 2, eta: NOW - 10, args: ["z".repeat(300)] });
    const plain = msg();
    const secret = msg({ task: "demo.login", args: ["ann", "hunter2"], kwargs: { k: 1 } });
    const expected: unknown[] = [];
    for (const m of [plain, odd, secret]) {
      const isSecret = m === secret ? [1] : undefined;
      events.safeEmit("task:received", m, 3, Date.now());
      expected.push({ ...base(m, "task-received"), deliveries: 3, retries: m.retries, args: argsPreview(m.args, m.kwargs, isSecret, 256), waitMs: Math.max(0, Date.now() - Math.max(m.sentAt, m.eta ?? 0)) });
      events.safeEmit("task:started", m);
      expected.push(base(m, "task-started"));
      vi.advanceTimersByTime(7);
      events.safeEmit("task:succeeded", m, { big: "r".repeat(400) }, 12.345);
      expected.push({ ...base(m, "task-succeeded"), runtimeMs: 12.3, ...(isSecret ? {} : { result: preview({ big: "r".repeat(400) }, 256) }) });
      events.safeEmit("task:failed", m, new TypeError('bad "x"'), Number.NaN, false);
      expected.push({ ...base(m, "task-failed"), runtimeMs: Number.NaN, error: { type: "TypeError", message: 'bad "x"' }, final: false });
      events.safeEmit("task:retry", m, new Error("e"), 1.5);
      expected.push({ ...base(m, "task-retried"), retries: m.retries + 1, delaySec: 1.5 });
      events.safeEmit("task:expired", m);
      expected.push(base(m, "task-expired"));
      events.safeEmit("task:revoked", m);
      expected.push(base(m, "task-revoked"));
    }
    events.safeEmit("task:poisoned", 'p"1', "default", "not JSON: \u0001");
    expected.push({ v: 1, type: "task-poisoned", id: 'p"1', queue: "default", reason: "not JSON: \u0001", ts: Date.now(), worker: WORKER });
    await rec.flush();
    const got = batches.flatMap((b) => eventTexts(b.events));
    // A flush's events go out as lines of one field: an event must never hold a raw newline (it would split here).
    expect(got).toEqual(expected.map((e) => JSON.stringify(e)));
    expect(got.filter((e) => /[\n\r]/.test(e))).toEqual([]);
    // A NaN run time is written as null (as JSON.stringify does), which the reader rejects; the rest must read back.
    for (const e of got.filter((x) => !x.includes('"runtimeMs":null'))) expect(decodeEvent(e)).not.toBeNull();
    expect(got.join("\n")).not.toContain("hunter2");
    expect(got[2 * 7]).toContain(`"args":${JSON.stringify(`["ann","${MASK}",{"k":1}]`)}`);
  });

  it("counts per task and minute, and keeps counts and events across a failed publish", async () => {
    const m = msg();
    events.safeEmit("task:received", m, 1, Date.now());
    events.safeEmit("task:succeeded", m, 5, 2.6);
    vi.advanceTimersByTime(200); // the next minute
    events.safeEmit("task:received", m, 1, Date.now());
    events.safeEmit("task:failed", m, new Error("x"), 1, false);
    events.safeEmit("task:retry", m, new Error("x"), 1);
    fail = true;
    await rec.flush();
    expect(batches).toHaveLength(0);
    events.safeEmit("task:failed", m, new Error("x"), 1, true);
    events.safeEmit("task:received", msg({ task: "demo.login" }), 1, Date.now());
    fail = false;
    await rec.flush();
    const minute = Math.floor(NOW / 60_000);
    const rows = batches.flatMap((b) => b.counters).map((r) => `${r.minute - minute} ${r.key} ${r.n}`);
    expect(rows.sort()).toEqual(["0 received:demo.add 1", "0 runtime_ms:demo.add 3", "0 succeeded:demo.add 1", "1 failed:demo.add 1", "1 received:demo.add 1", "1 received:demo.login 1", "1 retried:demo.add 1"]);
    expect(batches.flatMap((b) => eventTexts(b.events)).map((e) => decodeEvent(e)?.type)).toEqual([
      "task-received", "task-succeeded", "task-received", "task-failed", "task-retried", "task-failed", "task-received",
    ]);
  });

  it("re-sends only the part of a flush that did not land, so counters are not counted twice", async () => {
    const m = msg();
    let landed: { events: boolean; counters: boolean } | undefined = { events: false, counters: true };
    const transport = {
      publishActivity: async (b: ActivityBatch) => {
        if (landed) {
          const l = landed;
          landed = undefined;
          throw new ActivityPublishError("cannot record task events: x", l);
        }
        batches.push(stored(b));
      },
    } as unknown as Transport;
    const own = new WorkerEvents();
    const r = new ActivityRecorder({ workerId: WORKER, events: own, transport, registry, logger, eventsMaxLen: 100 });
    own.safeEmit("task:received", m, 1, Date.now());
    await r.flush(); // the events fail, the counters land
    await r.flush();
    expect(batches.flatMap((b) => b.counters)).toEqual([]);
    expect(batches.flatMap((b) => eventTexts(b.events)).map((e) => decodeEvent(e)?.type)).toEqual(["task-received"]);

    batches.length = 0;
    landed = { events: true, counters: false };
    own.safeEmit("task:received", m, 1, Date.now());
    await r.flush(); // the events land, the counters fail
    await r.flush();
    expect(batches.flatMap((b) => eventTexts(b.events))).toEqual([]);
    expect(batches.flatMap((b) => b.counters).map((c) => `${c.key} ${c.n}`)).toEqual(["received:demo.add 1"]);
    await r.close();
  });

  it("a task received into the prefetch and started later is stamped with when it was received", async () => {
    const m = msg({ sentAt: NOW - 40 });
    events.safeEmit("task:received", m, 1, NOW - 25);
    await rec.close();
    const received = batches.flatMap((b) => eventTexts(b.events)).map((e) => decodeEvent(e)).find((e) => e?.type === "task-received");
    expect(received).toMatchObject({ ts: NOW - 25, waitMs: 15 });
  });

  it("records through direct calls when not given the worker's events", async () => {
    const transport = { publishActivity: async (b: ActivityBatch) => void batches.push(stored(b)) } as unknown as Transport;
    const direct = new ActivityRecorder({ workerId: WORKER, transport, registry, logger, eventsMaxLen: 100 });
    direct.taskReceived(msg(), 1);
    direct.taskStarted(msg());
    direct.taskSucceeded(msg(), 5, 1);
    await direct.close();
    expect(batches.flatMap((b) => eventTexts(b.events)).map((e) => decodeEvent(e)?.type)).toEqual(["task-received", "task-started", "task-succeeded"]);
  });

  it("reuses the memory of a stored payload for the next, and never that of a payload whose publish failed", async () => {
    const sent: ActivityBatch[] = [];
    let refuse = false;
    const transport = {
      publishActivity: async (b: ActivityBatch) => {
        sent.push(b);
        if (refuse) throw new Error("down");
      },
    } as unknown as Transport;
    const r = new ActivityRecorder({ workerId: WORKER, transport, registry, logger, eventsMaxLen: 100 });
    r.taskReceived(msg(), 1);
    await r.flush();
    r.taskStarted(msg());
    await r.flush();
    expect(sent[1]!.events.data.buffer).toBe(sent[0]!.events.data.buffer);

    refuse = true;
    r.taskSucceeded(msg(), 5, 1);
    await r.flush();
    const failed = sent[2]!.events;
    const bytes = Buffer.from(failed.data);
    refuse = false;
    r.taskReceived(msg({ id: "other" }), 1);
    await r.close();
    expect(sent[3]!.events.data.buffer).not.toBe(failed.data.buffer);
    expect(failed.data.equals(bytes)).toBe(true);
    expect(eventTexts(sent[3]!.events).map((e) => decodeEvent(e)?.type)).toEqual(["task-succeeded", "task-received"]);
  });
});
