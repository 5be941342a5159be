// The pieces the performance work put on the worker's hot path: each must behave exactly like the slow
// path it stands in for. No timings here; speed is measured by bench/, never by unit tests.
import { describe, expect, it } from "vitest";
import { MessageError } from "../../src/errors.ts";
import { decodeMessage, taskMessageSchema } from "../../src/protocol/message.ts";
import { LazyAbortController } from "../../src/worker/lazy-abort.ts";
import { AutoPrefetch, PREFETCH_CAP } from "../../src/worker/prefetch.ts";

const base = { v: 1, id: "t1", task: "demo.add", args: [1, 2], kwargs: {}, queue: "default", priority: 0, retries: 0, sentAt: 1700000000000 };

describe("decodeMessage fast path", () => {
  const valid: Record<string, unknown>[] = [
    base,
    { ...base, kwargs: { a: 1 }, eta: 1, expires: 2, timeLimitMs: 5, softTimeLimitMs: 0.5, maxRetries: 0, uniqueKey: "", ignoreResult: true, origin: "x" },
    { ...base, priority: 9, retries: 3 },
  ];
  const invalid: Record<string, unknown>[] = [
    { ...base, v: 2 },
    { ...base, id: "" },
    { ...base, id: "x".repeat(201) },
    { ...base, args: {} },
    { ...base, kwargs: [] },
    { ...base, kwargs: null },
    { ...base, queue: "" },
    { ...base, priority: 10 },
    { ...base, priority: 1.5 },
    { ...base, retries: -1 },
    { ...base, sentAt: "now" },
    { ...base, timeLimitMs: 0 },
    { ...base, maxRetries: 1.5 },
    { ...base, ignoreResult: "yes" },
    { ...base, eta: null },
    { ...base, extra: 1 },
  ];

  it("accepts what the schema accepts, with the same data", () => {
    for (const m of valid) {
      expect(taskMessageSchema.safeParse(m).success).toBe(true);
      expect(decodeMessage(JSON.stringify(m))).toEqual(taskMessageSchema.parse(m));
    }
  });

  it("rejects what the schema rejects, with zod's precise message", () => {
    for (const m of invalid) {
      expect(taskMessageSchema.safeParse(m).success).toBe(false);
      expect(() => decodeMessage(JSON.stringify(m))).toThrow(MessageError);
    }
    expect(() => decodeMessage(JSON.stringify({ ...base, priority: 10 }))).toThrow(/priority/);
    expect(() => decodeMessage(JSON.stringify({ ...base, extra: 1 }))).toThrow(/extra/);
    expect(() => decodeMessage(JSON.stringify({ ...base, v: 2 }))).toThrow(/unsupported message version 2/);
  });
});

describe("LazyAbortController", () => {
  it("creates no signal until asked, and an abort before that still shows on the signal", () => {
    const c = new LazyAbortController();
    const reason = new Error("lease lost");
    c.abort(reason);
    c.abort(new Error("second abort is ignored"));
    expect(c.signal.aborted).toBe(true);
    expect(c.signal.reason).toBe(reason);
  });

  it("aborts a signal handed out earlier and fires its listeners once", () => {
    const c = new LazyAbortController();
    const seen: unknown[] = [];
    c.signal.addEventListener("abort", () => seen.push(c.signal.reason));
    c.abort("stop");
    c.abort("again");
    expect(seen).toEqual(["stop"]);
  });

  it("gives the same default reason as a real controller", () => {
    const c = new LazyAbortController();
    c.abort();
    expect((c.signal.reason as DOMException).name).toBe("AbortError");
  });
});

describe("AutoPrefetch", () => {
  it("prefetches nothing until runtimes are known", () => {
    const p = new AutoPrefetch(10);
    expect(p.target()).toBe(0);
    for (let i = 0; i < 7; i++) p.observe(0.01);
    expect(p.target()).toBe(0);
    p.observe(0.01);
    expect(p.target()).toBe(PREFETCH_CAP);
  });

  it("sizes the prefetch by what the slots get through in about 10 ms", () => {
    const short = new AutoPrefetch(1);
    for (let i = 0; i < 20; i++) short.observe(2);
    expect(short.target()).toBe(4); // 1 slot x 10 ms / 2 ms = 5 tasks, one of them running
    const wide = new AutoPrefetch(100);
    for (let i = 0; i < 20; i++) wide.observe(0.001);
    expect(wide.target()).toBe(PREFETCH_CAP); // capped
    const huge = new AutoPrefetch(1000);
    for (let i = 0; i < 20; i++) huge.observe(0.001);
    expect(huge.target()).toBe(1000); // a pool wider than the cap may hold one more round
    const mid = new AutoPrefetch(100);
    for (let i = 0; i < 20; i++) mid.observe(4);
    expect(mid.target()).toBe(150); // 100 slots x 10 ms / 4 ms = 250 tasks, 100 of them running
  });

  it("turns itself off for slow tasks, also after fast ones", () => {
    const p = new AutoPrefetch(4);
    for (let i = 0; i < 20; i++) p.observe(0.1);
    expect(p.target()).toBeGreaterThan(0);
    for (let i = 0; i < 200; i++) p.observe(50);
    expect(p.target()).toBe(0);
  });
});
