import { EventEmitter } from "node:events";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { Transport, WorkerInfo } from "../../src/broker/transport.ts";
import type { WorkerEvents } from "../../src/worker/events.ts";
import { Watchdog } from "../../src/worker/watchdog.ts";

/** A watchdog on a fake clock; rounds are run by hand (check()), as its timer would. */
function setup(stats: () => Promise<unknown> = async () => []) {
  let t = 1_000_000;
  let cpu = 0;
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  const events = new EventEmitter();
  let rebuilds = 0;
  const transport = { stats, reconnect: async () => (rebuilds++, 3) } as unknown as Transport;
  const worker = { id: "w", events: events as unknown as WorkerEvents, info: () => ({ active: 1 }) as WorkerInfo };
  const dog = new Watchdog({ worker, transport, logger, queues: ["default"], concurrency: 10, checkEveryMs: 500, silentAfterMs: 1000, stallAfterMs: 5000, now: () => t, cpuMs: () => cpu });
  /** Time passes, `cpuMs` of it spent on the CPU by the process. */
  const advance = (ms: number, cpuMs = 0) => {
    t += ms;
    cpu += cpuMs;
  };
  return { dog, events, lines, advance, rebuilds: () => rebuilds };
}

describe("Watchdog", () => {
  it("a blocked event loop (its own round 12 s late, the gap spent on CPU) is reported as such, not as a silent broker, and nothing is rebuilt", async () => {
    const { dog, lines, advance, rebuilds } = setup();
    advance(12_500, 12_400);
    await dog.check();
    expect(lines.map((l) => l.msg)).toEqual(["the event loop was blocked for 12.00 s, most likely by a task running synchronous code; CPU-bound tasks belong in pool: process"]);
    advance(500);
    await dog.check();
    expect(lines).toHaveLength(1);
    expect(rebuilds()).toBe(0);
  });

  it("a round 12 s late after a gap that used no CPU (the process stopped, or a task waiting synchronously) is not called a CPU-bound task", async () => {
    const { dog, lines, advance, rebuilds } = setup();
    advance(12_500, 4);
    await dog.check();
    expect(lines).toHaveLength(1);
    expect(lines[0]!.level).toBe(40);
    expect(lines[0]!.msg).toMatch(/^the worker's main thread did not run for 12\.00 s and the process used 4\.0 ms of CPU meanwhile, so no task kept it busy: the process was stopped or paused \(SIGSTOP.*or a task waited synchronously \(Atomics\.wait, execSync/);
    expect(lines[0]!.msg).toMatch(/renews no leases/);
    expect(lines[0]!.msg).not.toMatch(/CPU-bound|event loop was blocked/);
    advance(500);
    await dog.check();
    expect(lines).toHaveLength(1);
    expect(rebuilds()).toBe(0);
  });

  it("a broker that stops answering while rounds run on time is still reported, then rebuilt", async () => {
    const { dog, lines, advance, rebuilds } = setup();
    for (let i = 0; i < 12; i++) {
      advance(500);
      await dog.check();
    }
    expect(lines.some((l) => l.level === 50 && /^broker not answering for /.test(l.msg))).toBe(true);
    expect(lines.some((l) => /rebuilding the broker connections$/.test(l.msg))).toBe(true);
    expect(rebuilds()).toBe(1);
  });

  it("rounds skipped while one waits for a frozen broker do not count as the event loop being blocked", async () => {
    let answer: (v: unknown) => void = () => {};
    // Work waits and slots are free, so a round asks the broker how much: that call hangs (Redis frozen).
    const { dog, events, lines, advance } = setup(() => new Promise((r) => (answer = r)));
    const tick = () => events.emit("worker:tick");
    // 5.5 s of rounds on time with the broker answering; no task taken, so the last one asks how much waits.
    for (let i = 0; i < 10; i++) {
      advance(500);
      tick();
      await dog.check();
    }
    advance(500);
    tick();
    const waiting = dog.check();
    for (let i = 0; i < 6; i++) {
      advance(500);
      await dog.check();
    }
    answer([{ name: "default", ready: 0, delayed: 0, active: 0, dead: 0 }]);
    await waiting;
    advance(500);
    await dog.check();
    expect(lines.some((l) => /event loop was blocked/.test(l.msg))).toBe(false);
    // Reported while the round still waits, once housekeeping has been silent for silentAfterMs.
    expect(lines.filter((l) => l.level === 50).map((l) => l.msg)).toEqual([expect.stringMatching(/^broker not answering for 1\.00 s;/)]);
  });
});
