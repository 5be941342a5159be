import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import type { WorkerInfo } from "../../src/broker/transport.ts";
import { renderDead as renderDeadCommand } from "../../src/cli/dead.ts";
import { colorFor, duration, peekPayload, plain } from "../../src/cli/inspect/format.ts";
import { summarize } from "../../src/cli/inspect/stats.ts";
import { CLEAR, watchLoop } from "../../src/cli/inspect/watch.ts";
import { activeRows, deadRows, renderActive, renderDead, renderQueues, renderScheduled, renderStats, renderWorkers, scheduledRows, workerRow } from "../../src/cli/inspect/views.ts";
import { renderStatus } from "../../src/cli/result.ts";
import { MessageError } from "../../src/errors.ts";
import { decodeEvent, encodeEvent } from "../../src/events/format.ts";
import { argsPreview, MASK } from "../../src/results/args.ts";
import { clampProgress } from "../../src/results/progress.ts";
import { decodeResult, encodeResult, errorInfo } from "../../src/results/record.ts";
import { fromLocation } from "../../src/results/status.ts";
import { onlyEntry } from "../fixtures/celery/load.ts";

const NOW = Date.UTC(2030, 0, 1, 12, 0, 30);
const worker = (extra: Partial<WorkerInfo> = {}): WorkerInfo => ({
  id: "h.1.a",
  host: "h",
  pid: 101,
  concurrency: 4,
  pool: "async",
  queues: ["default"],
  startedAt: NOW - 125_000,
  lastBeat: NOW - 500,
  processed: 9,
  succeeded: 8,
  failed: 1,
  active: 2,
  version: "t",
  ...extra,
});

describe("renderers", () => {
  it("queues: one row per queue, then the workers", () => {
    const out = renderQueues({ queues: [{ name: "emails", ready: 3, delayed: 1, active: 2, dead: 0 }], workers: [workerRow(worker(), NOW)] }, NOW, plain);
    expect(out).toMatch(/emails\s+│ 3\s+│ 1\s+│ 2\s+│ 0/);
    expect(out).toContain("h.1.a");
    expect(renderQueues({ queues: [], workers: [] }, NOW, plain)).toBe("no queues yet\n\nno live workers\n");
  });

  it("workers: uptime, load; processed counts every finished task, succeeded and failed beside it", () => {
    const row = workerRow(worker(), NOW);
    expect(row).toMatchObject({ alive: true, uptimeMs: 125_000, load: 0.5, processed: 9, succeeded: 8, failed: 1 });
    expect("progress" in row).toBe(false);
    const out = renderWorkers({ workers: [row] }, NOW, plain);
    expect(out).toMatch(/│ processed │ succeeded │ failed │/);
    expect(out).toMatch(/│ 9\s+│ 8\s+│ 1\s+│/);
    expect(out).toContain("2m 05s");
    expect(out).toContain("2/4 (50%)");
    // Listed means alive (a lapsed heartbeat is dropped by the broker): no "alive" column.
    expect(out).not.toContain("alive");
  });

  it("workers: a worker before 0.2 sent no succeeded, and its processed counted successes only", () => {
    const { succeeded: _s, ...old } = worker({ processed: 3, failed: 5 });
    void _s;
    expect(workerRow(old, NOW)).toMatchObject({ processed: 8, succeeded: 3, failed: 5 });
  });

  it("active: joins progress from heartbeats and shows runtime so far", () => {
    const rows = activeRows(
      [{ id: "t1", queue: "default", payload: JSON.stringify({ task: "img.resize", retries: 0 }), workerId: "h.1.a", leaseUntil: NOW + 1000, startedAt: NOW - 4200, deliveries: 1 }],
      [worker({ progress: { t1: { fraction: 0.4, note: "resizing", at: NOW } } })],
      NOW,
    );
    expect(rows[0]).toMatchObject({ task: "img.resize", runtimeMs: 4200, progress: { fraction: 0.4 } });
    const out = renderActive({ active: rows }, NOW, plain);
    expect(out).toContain("40% resizing");
    expect(out).toContain("4.2 s");
    expect(renderActive({ active: [] }, NOW, plain)).toBe("no running tasks\n");
  });

  it("active: a prefetched task is shown as such, with no runtime (its lease began when it was fetched)", () => {
    const task = (id: string) => ({ id, queue: "default", payload: JSON.stringify({ task: "img.resize" }), workerId: "h.1.a", leaseUntil: NOW + 1000, startedAt: NOW - 9000, deliveries: 1 });
    const rows = activeRows([task("run"), task("wait")], [worker({ waiting: ["wait"] })], NOW);
    expect(rows[0]).toMatchObject({ id: "run", runtimeMs: 9000 });
    expect(rows[0]!.waiting).toBeUndefined();
    expect(rows[1]).toMatchObject({ id: "wait", runtimeMs: 0, waiting: true });
    const out = renderActive({ active: rows }, NOW, plain);
    expect(out).toMatch(/run .*9\.0 s/);
    expect(out).toMatch(/wait .*prefetched/);
    expect(workerRow(worker({ waiting: ["wait", "w2"] }), NOW)).toMatchObject({ prefetched: 2 });
    expect("waiting" in workerRow(worker({ waiting: ["wait"] }), NOW)).toBe(false);
  });

  it("scheduled: due time absolute and relative, retries marked", () => {
    const out = renderScheduled({ scheduled: [{ id: "t2", task: "x", queue: "q", dueAt: NOW + 90_000, retries: 2 }] }, NOW, plain);
    expect(out).toContain("2030-01-01T12:02:00.000Z");
    expect(out).toContain("in 1m 30s");
    expect(out).toContain("retry 2");
  });

  it("a due time no Date can hold (an older or foreign sender's) is shown as stored, not a crash", () => {
    const out = renderScheduled({ scheduled: [{ id: "t9", task: "x", queue: "q", dueAt: 1e23, retries: 0 }] }, NOW, plain);
    expect(out).toContain("1e+23");
    const status = renderStatus({ id: "t9", state: "PENDING", sentAt: -1e20, dueAt: 1e23 }, NOW, plain);
    expect(status).toContain("sent:     -100000000000000000000");
    expect(status).toMatch(/due: {6}1e\+23 \(in .+\)/);
  });

  it("result: a failure shows type, message and stack; a running task its progress", () => {
    const failed = renderStatus(
      { id: "t3", state: "FAILURE", task: "x", retries: 1, error: { type: "TypeError", message: "boom", stack: "TypeError: boom\n    at f (a.ts:1:1)" } },
      NOW,
      plain,
    );
    expect(failed).toContain("error:    TypeError: boom");
    expect(failed).toContain("at f (a.ts:1:1)");
    expect(failed).toContain("attempts: 2");
    const running = renderStatus({ id: "t4", state: "STARTED", startedAt: NOW - 3000, progress: { fraction: 0.25, at: NOW } }, NOW, plain);
    expect(running).toContain("runtime:  3.0 s so far");
    expect(running).toContain("progress: 25%");
  });

  it("result: a stored run time reads rounded to 0.1 ms, as the task events report it", () => {
    expect(decodeResult('{"id":"t5","state":"SUCCESS","runtimeMs":12.048099999999977}').runtimeMs).toBe(12);
    expect(decodeResult('{"id":"t5","state":"SUCCESS","runtimeMs":0.04809999999999945}').runtimeMs).toBe(0);
    expect(decodeResult('{"id":"t5","state":"FAILURE","runtimeMs":1503.2712}').runtimeMs).toBe(1503.3);
    expect(decodeResult('{"id":"t5","state":"PENDING"}')).toEqual({ id: "t5", state: "PENDING" });
  });

  it("result: stored text that is not a record fails with a one-line MessageError (found by decoders-fuzz)", () => {
    // They were a TypeError or SyntaxError from inside TaskRef.get(), or a record typed as one that was not.
    const cases: [string, RegExp][] = [
      ["null", /^stored result is not a task result: record: /],
      ["{not json", /^stored result is not valid JSON \(/],
      ['{"id":"t5","state":"DONE"}', /^stored result is not a task result: state: /],
      ['{"id":"t5","state":"FAILURE","error":"boom"}', /^stored result is not a task result: error: /],
      ['{"id":"t5","state":"SUCCESS","runtimeMs":"12"}', /^stored result is not a task result: runtimeMs: /],
      [`{"id":"t5","state":"SUCCESS","result":${"[".repeat(20_000)}${"]".repeat(20_000)}}`, /^stored result "result" nests deeper than 512 levels$/],
    ];
    for (const [raw, reason] of cases) {
      expect(() => decodeResult(raw)).toThrow(MessageError);
      expect(() => decodeResult(raw)).toThrow(reason);
    }
    // A newer worker's extra fields are kept.
    expect(decodeResult('{"id":"t5","state":"SUCCESS","result":1,"extra":true}')).toEqual({ id: "t5", state: "SUCCESS", result: 1, extra: true });
    // And a worker stores what it reads: an error whose name or message a task set to something else.
    const odd = Object.assign(new Error("x"), { name: 42, message: 7 as unknown as string });
    const stored = encodeResult({ id: "t6", state: "FAILURE", error: errorInfo(odd) });
    expect(decodeResult(stored).error).toMatchObject({ type: "Error", message: "7" });
  });

  it("no colour without a TTY, with --json, or with NO_COLOR", () => {
    const tty = Object.assign(new PassThrough(), { isTTY: true }) as unknown as NodeJS.WriteStream;
    const pipe = new PassThrough() as unknown as NodeJS.WriteStream;
    expect(colorFor({ stream: tty, env: {} }).level).toBeGreaterThan(0);
    expect(colorFor({ stream: tty, env: { NO_COLOR: "1" } }).level).toBe(0);
    expect(colorFor({ stream: tty, env: {}, json: true }).level).toBe(0);
    expect(colorFor({ stream: pipe, env: {} }).level).toBe(0);
  });

  it("durations read naturally", () => {
    expect([duration(850), duration(12_345), duration(245_000), duration(7_380_000), duration(273_600_000)]).toEqual(["850 ms", "12.3 s", "4m 05s", "2h 03m", "3d 04h"]);
  });
});

describe("Celery messages (held under a celery:… lease, payload = kombu's envelope)", () => {
  const CELERY_ID = "6f25c36f-62bf-4767-a722-50ed79640001";
  const LEASE = "celery:gsTNs_Uq3g.2";
  const v2 = onlyEntry("v2-basic").raw;
  const withRetries = (n: number) => {
    const env = JSON.parse(v2) as { headers: Record<string, unknown> };
    env.headers.retries = n;
    return JSON.stringify(env);
  };

  it("peekPayload: task name, retries and Celery task id; qworker payloads as before; never throws", () => {
    expect(peekPayload(v2)).toEqual({ task: "tasks.add", retries: 0, celeryId: CELERY_ID });
    expect(peekPayload(onlyEntry("v1-basic").raw)).toMatchObject({ task: "tasks.add", celeryId: expect.stringMatching(/201$/) });
    expect(peekPayload(JSON.stringify({ v: 1, id: "q1", task: "img.resize", retries: 2 }))).toEqual({ task: "img.resize", retries: 2 });
    for (const bad of ["", "garbage", "null", "[1]", "7", '{"headers":5}', '{"body":"%%%","properties":{"body_encoding":"base64"}}', '{"headers":{"task":3}}']) {
      expect(peekPayload(bad)).toEqual({});
    }
  });

  it("dead, scheduled and active rows name the task and carry the Celery id beside the lease id", () => {
    const dead = deadRows([{ id: LEASE, queue: "celery:billing", payload: v2, reason: "failed: boom", deadAt: NOW - 5000, deliveries: 1 }]);
    expect(dead[0]).toMatchObject({ id: LEASE, celeryId: CELERY_ID, task: "tasks.add" });
    const deadOut = renderDead({ dead }, NOW, plain);
    expect(deadOut).toContain(LEASE);
    expect(deadOut).toContain(`celery ${CELERY_ID}`);
    expect(deadOut).toContain("tasks.add");

    const scheduled = scheduledRows([{ id: LEASE, queue: "celery:billing", payload: withRetries(2), dueAt: NOW + 60_000 }]);
    expect(scheduled[0]).toEqual({ id: LEASE, celeryId: CELERY_ID, task: "tasks.add", queue: "celery:billing", dueAt: NOW + 60_000, retries: 2 });
    expect(renderScheduled({ scheduled }, NOW, plain)).toContain(`celery ${CELERY_ID}`);

    const active = activeRows([{ id: LEASE, queue: "celery:billing", payload: v2, workerId: "h.1.a", leaseUntil: NOW + 1000, startedAt: NOW - 1000, deliveries: 1 }], [], NOW);
    expect(active[0]).toMatchObject({ id: LEASE, celeryId: CELERY_ID, task: "tasks.add" });
    expect(renderActive({ active }, NOW, plain)).toContain(`celery ${CELERY_ID}`);
  });

  it("qworker dead's table too; a malformed payload shows ? and no Celery id", () => {
    const out = renderDeadCommand([
      { id: LEASE, queue: "celery:billing", payload: v2, reason: "failed: boom", deadAt: NOW, deliveries: 1 },
      { id: "celery:x.1", queue: "celery:billing", payload: "not json", reason: "undecodable", deadAt: NOW, deliveries: 1 },
    ]);
    expect(out).toContain(`celery ${CELERY_ID}`);
    expect(out).toMatch(/celery:x\.1\s+│ celery:billing │ \?/);
    expect(deadRows([{ id: "celery:x.1", queue: "q", payload: "{", reason: "r", deadAt: NOW, deliveries: 1 }])[0]).not.toHaveProperty("celeryId");
  });
});

describe("stats", () => {
  const minute = Math.floor(NOW / 60_000);
  it("folds per-minute counters into throughput, failure rate and mean runtime per task", () => {
    const r = summarize(
      [
        { minute, key: "received:a", n: 10 },
        { minute, key: "succeeded:a", n: 6 },
        { minute: minute - 1, key: "succeeded:a", n: 2 },
        { minute, key: "runtime_ms:a", n: 800 },
        { minute, key: "failed:a", n: 2 },
        { minute, key: "retried:a", n: 3 },
        { minute: minute - 10, key: "succeeded:a", n: 1000 }, // outside the window
        { minute, key: "succeeded:b", n: 1 },
      ],
      5,
      NOW,
    );
    expect(r.tasks[0]).toEqual({ task: "a", received: 10, succeeded: 8, failed: 2, retried: 3, perMinute: 2, failureRate: 0.2, avgRuntimeMs: 100 });
    expect(r.total).toMatchObject({ succeeded: 9, failed: 2 });
    expect(r.since).toBe((minute - 4) * 60_000);
    expect(renderStats(r, NOW, plain)).toMatch(/a\s+│ 10\s+│ 8\s+│ 2\s+│ 3\s+│ 2\s+│ 20.0%\s+│ 100 ms/);
  });
});

describe("args previews, progress, state derivation, events", () => {
  it("masks secret positions and keywords before capping", () => {
    expect(argsPreview(["ann", "hunter2"], {}, [1])).toBe(`["ann","${MASK}"]`);
    expect(argsPreview(["ann"], { password: "x", keep: 1 }, ["password"])).toBe(`["ann",{"password":"${MASK}","keep":1}]`);
    expect(argsPreview(["a", "b"], {}, true)).toBe(MASK);
    const long = argsPreview(["x".repeat(5000)], {}, undefined, 100);
    expect(long).toHaveLength(100);
    expect(long.endsWith("…")).toBe(true);
  });

  it("clamps bad progress reports instead of throwing", () => {
    expect(clampProgress(7, "n")).toMatchObject({ fraction: 1, note: "n" });
    expect(clampProgress(Number.NaN).fraction).toBe(0);
    expect(clampProgress(0.5, "y".repeat(500)).note).toHaveLength(120);
  });

  it("derives PENDING / RETRY / STARTED / dead FAILURE from where the task sits", () => {
    const payload = (retries: number) => JSON.stringify({ v: 1, id: "t", task: "demo.add", retries, sentAt: 5 });
    expect(fromLocation({ id: "t", queue: "q", state: "ready", payload: payload(0), deliveries: 0 })).toMatchObject({ state: "PENDING", task: "demo.add", sentAt: 5 });
    expect(fromLocation({ id: "t", queue: "q", state: "delayed", payload: payload(2), deliveries: 0, dueAt: 99 })).toMatchObject({ state: "RETRY", dueAt: 99, retries: 2 });
    expect(fromLocation({ id: "t", queue: "q", state: "active", payload: payload(0), deliveries: 1, workerId: "w", startedAt: 7 }, { progress: { fraction: 0.5, at: 1 } })).toMatchObject({
      state: "STARTED",
      worker: "w",
      progress: { fraction: 0.5 },
    });
    expect(fromLocation({ id: "t", queue: "q", state: "dead", payload: "not json", deliveries: 5, reason: "crashed" })).toMatchObject({ state: "FAILURE", deadReason: "crashed" });
    // Leased but waiting in the worker's prefetch: received, not started, so no start time either.
    const waiting = fromLocation({ id: "t", queue: "q", state: "active", payload: payload(0), deliveries: 1, workerId: "w", startedAt: 7 }, { waiting: true });
    expect(waiting).toMatchObject({ state: "RECEIVED", worker: "w" });
    expect(waiting.startedAt).toBeUndefined();
  });

  it("events round-trip; unknown versions and junk are skipped", () => {
    const e = { v: 1 as const, type: "task-succeeded" as const, id: "t", ts: 1, worker: "w", runtimeMs: 2 };
    expect(decodeEvent(encodeEvent(e))).toEqual(e);
    expect(decodeEvent(JSON.stringify({ ...e, v: 2 }))).toBeNull();
    expect(decodeEvent("{")).toBeNull();
  });
});

describe("watch loop", () => {
  it("redraws in place on a TTY and quits on q, restoring the terminal", async () => {
    const out = Object.assign(new PassThrough(), { isTTY: true }) as unknown as NodeJS.WriteStream & PassThrough;
    let raw = false;
    const input = Object.assign(new PassThrough(), { isTTY: true, setRawMode: (on: boolean) => ((raw = on), input) }) as unknown as NodeJS.ReadStream & PassThrough;
    let written = "";
    out.on("data", (d: Buffer) => (written += d.toString()));
    let frames = 0;
    const loop = watchLoop(async () => `frame ${++frames}\n`, 20, { out, input });
    while (frames < 3) await new Promise((r) => setTimeout(r, 10));
    expect(raw).toBe(true);
    input.write("q");
    await loop;
    expect(raw).toBe(false);
    expect(written.split(CLEAR).length - 1).toBeGreaterThanOrEqual(3);
    expect(written).toContain("press q to quit");
    const before = frames;
    await new Promise((r) => setTimeout(r, 60));
    expect(frames).toBe(before); // stopped for good
  });

  it("keeps going when a frame fails, showing the error", async () => {
    const out = new PassThrough() as unknown as NodeJS.WriteStream & PassThrough;
    const input = new PassThrough() as unknown as NodeJS.ReadStream;
    let written = "";
    out.on("data", (d: Buffer) => (written += d.toString()));
    let n = 0;
    const loop = watchLoop(
      async () => {
        n++;
        if (n === 1) throw new Error("broker down");
        if (n === 3) process.emit("SIGINT");
        return "ok\n";
      },
      10,
      { out, input },
    );
    await loop;
    expect(written).toContain("error: broker down");
    expect(written).toContain("ok");
    expect(written).not.toContain(CLEAR); // not a TTY: frames are appended
  });
});
