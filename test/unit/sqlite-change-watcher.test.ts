import { afterEach, describe, expect, it } from "vitest";
import { ChangeWatcher } from "../../src/broker/embedded/wait.ts";

describe("ChangeWatcher", () => {
  let version = 1;
  let reads = 0;
  const watchers: ChangeWatcher[] = [];
  const make = (pollMs = 1000) => {
    const w = new ChangeWatcher({
      readVersion: () => {
        reads++;
        return version;
      },
      pollMs,
    });
    watchers.push(w);
    return w;
  };
  afterEach(() => {
    for (const w of watchers.splice(0)) w.close();
    version = 1;
    reads = 0;
  });

  it("resolves at the deadline when nothing changes", async () => {
    const w = make(20);
    const start = Date.now();
    await w.wait(start + 80, w.snapshot());
    expect(Date.now() - start).toBeGreaterThanOrEqual(75);
    expect(Date.now() - start).toBeLessThan(500);
  });

  it("returns at once when the epoch moved since the snapshot", async () => {
    const w = make();
    const since = w.snapshot();
    version++; // another connection committed between the check and the wait
    w.snapshot();
    const start = Date.now();
    await w.wait(Date.now() + 5000, since);
    expect(Date.now() - start).toBeLessThan(50);
  });

  it("notify() wakes a waiter on the next turn", async () => {
    const w = make();
    const start = Date.now();
    const p = w.wait(Date.now() + 5000, w.snapshot());
    setTimeout(() => w.notify(), 30);
    await p;
    expect(Date.now() - start).toBeLessThan(500);
  });

  it("a poke finds a commit by another connection without waiting for the slow poll", async () => {
    const w = make(10_000);
    const start = Date.now();
    const p = w.wait(Date.now() + 5000, w.snapshot());
    setTimeout(() => {
      version++;
      w.poke();
    }, 30);
    await p;
    expect(Date.now() - start).toBeLessThan(500);
  });

  it("a poke keeps polling briefly, catching a commit that becomes visible just after the file write", async () => {
    const w = make(10_000);
    const start = Date.now();
    const p = w.wait(Date.now() + 5000, w.snapshot());
    setTimeout(() => w.poke(), 20);
    setTimeout(() => version++, 35);
    await p;
    expect(Date.now() - start).toBeLessThan(500);
  });

  it("polls only while someone waits or listens", async () => {
    const w = make(5);
    w.snapshot();
    const before = reads;
    await new Promise((r) => setTimeout(r, 60));
    expect(reads).toBe(before);
    await w.wait(Date.now() + 60, w.snapshot());
    expect(reads).toBeGreaterThan(before + 3);
  });

  it("subscribers hear changes until they unsubscribe", async () => {
    const w = make(5);
    let calls = 0;
    const stop = w.subscribe(() => calls++);
    version++;
    await new Promise((r) => setTimeout(r, 40));
    expect(calls).toBe(1);
    stop();
    version++;
    await new Promise((r) => setTimeout(r, 40));
    expect(calls).toBe(1);
  });

  it("close() releases every waiter", async () => {
    const w = make();
    const p = w.wait(Date.now() + 60_000, w.snapshot());
    w.close();
    await expect(p).resolves.toBeUndefined();
  });
});
