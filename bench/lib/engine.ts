/**
 * What an engine adapter provides, and the child-process side of the protocol (protocol.ts) that runs the
 * benchmark cases on top of it. The cases are written once here so every engine is measured the same way;
 * an engine file only says how to send tasks and how to run a worker, the way its users would.
 */
import { PerformanceObserver, type PerformanceEntry } from "node:perf_hooks";
import { Redis } from "ioredis";
import { installClientCounter, excludeFromCount, readClientCounts, resetClientCounts } from "./client-counter.ts";
import { diffSnapshots, takeSnapshot, type InfoSnapshot } from "./redis-info.ts";
import { EXIT_NOT_IMPLEMENTED, type ChildCase, type ChildMessage, type ChildOptions } from "./protocol.ts";
import { max, mean, percentile } from "./stats.ts";

/** The task arguments every case sends: `i` its index, `t` the send time (latency cases). */
export interface BenchPayload {
  i: number;
  t?: number;
  warmup?: boolean;
}

export interface BenchProducer {
  /** Enqueue these tasks with the engine's bulk API (the harness already cut them into batches). */
  sendBulk(payloads: BenchPayload[]): Promise<void>;
  /** Enqueue one task and resolve once the broker has it. */
  send(payload: BenchPayload): Promise<void>;
  close(): Promise<void>;
}

export interface WorkerSpec {
  concurrency: number;
  /** Call this at the start of the task handler with the task's arguments; the handler itself does nothing. */
  onStart(payload: BenchPayload): void;
  /** Call this once per task after the broker recorded its completion (acked/removed). */
  onCompleted(): void;
}

export interface BenchWorker {
  /** Start consuming. Everything slow (connecting, loading scripts) belongs in createWorker. */
  run(): void;
  close(): Promise<void>;
}

export interface BenchEngine {
  readonly name: string;
  /** The Redis server the harness runs is the engine's broker (enables the Redis cost case). */
  readonly usesRedis: boolean;
  /** e.g. "bullmq 6.7.0"; printed in the results. */
  version(): Promise<string>;
  openProducer(opts: ChildOptions): Promise<BenchProducer>;
  /** Connected and ready, but not consuming until run(). */
  createWorker(opts: ChildOptions, spec: WorkerSpec): Promise<BenchWorker>;
}

/** Thrown by an adapter whose engine is not there yet: the orchestrator skips the engine instead of failing. */
export class NotImplementedError extends Error {
  override readonly name = "NotImplementedError";
  readonly notImplemented = true;
}

export function isNotImplemented(err: unknown): boolean {
  return (
    err instanceof NotImplementedError ||
    (typeof err === "object" && err !== null && (err as { notImplemented?: unknown }).notImplemented === true) ||
    /not implemented/i.test(String((err as Error | undefined)?.message ?? ""))
  );
}

/** Wall-clock epoch ms with sub-ms resolution; comparable across processes on one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function emit(msg: ChildMessage): void {
  process.stdout.write(JSON.stringify(msg) + "\n");
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

function need(v: number | undefined, name: string): number {
  if (v === undefined || !Number.isFinite(v) || v < 0) throw new Error(`option ${name} is required`);
  return v;
}

async function produce(engine: BenchEngine, opts: ChildOptions): Promise<Record<string, unknown>> {
  const n = need(opts.n, "n");
  const batch = Math.max(1, opts.batch ?? 1000);
  const producer = await engine.openProducer(opts);
  const batches: BenchPayload[][] = [];
  for (let i = 0; i < n; i += batch) {
    batches.push(Array.from({ length: Math.min(batch, n - i) }, (_, k) => ({ i: i + k })));
  }
  const t0 = nowMs();
  for (const b of batches) await producer.sendBulk(b);
  const ms = nowMs() - t0;
  await producer.close();
  return { n, batch, ms, rate: (n / ms) * 1000 };
}

async function single(engine: BenchEngine, opts: ChildOptions): Promise<Record<string, unknown>> {
  const count = need(opts.count, "count");
  const producer = await engine.openProducer(opts);
  await producer.send({ i: -1, warmup: true }); // first send pays for script loading and the like
  const t0 = nowMs();
  for (let i = 0; i < count; i++) await producer.send({ i });
  const ms = nowMs() - t0;
  await producer.close();
  return { count, ms, rate: (count / ms) * 1000, extraWarmupTasks: 1 };
}

function startRssSampler(intervalMs: number): { stop(): { peakMb: number; baseMb: number } } {
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss();
    if (rss > peak) peak = rss;
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      const rss = process.memoryUsage.rss();
      if (rss > peak) peak = rss;
      return { peakMb: peak / 2 ** 20, baseMb: base / 2 ** 20 };
    },
  };
}

async function drain(engine: BenchEngine, opts: ChildOptions): Promise<Record<string, unknown>> {
  const n = need(opts.n, "n");
  const concurrency = need(opts.concurrency, "concurrency");
  const warm = opts.drainWarmup ?? 0;
  let completed = 0;
  let started = 0;
  const done = deferred();
  // When each tenth of the measured tasks was done: a cold drain's first tenths run before the JIT and the
  // heap have warmed up, its last ones close to steady state.
  const tenth = Math.max(1, Math.floor(n / 10));
  const tenthsAt: number[] = [];
  // The main thread's garbage-collection pauses inside the window (what they cost, next to where it goes).
  let gcMs = 0;
  let gcCount = 0;
  const countGc = (entries: PerformanceEntry[]): void => {
    for (const e of entries) {
      if (performance.timeOrigin + e.startTime < t0) continue;
      gcMs += e.duration;
      gcCount++;
    }
  };
  const gc = new PerformanceObserver((list) => countGc(list.getEntries()));
  gc.observe({ entryTypes: ["gc"] });
  // The measurement window opens at the warm-up's last completion (at once for a cold drain). Until then
  // no GC entry counts: the observer delivers entries late, and with a start of 0 it had counted every
  // collection of the worker's start-up and of the warm-up too.
  let t0 = Number.POSITIVE_INFINITY;
  let cpu0 = process.cpuUsage();
  let elu0 = performance.eventLoopUtilization();
  let before: Promise<InfoSnapshot> | undefined;
  let probe: Redis | undefined;
  const openWindow = (snapshot: boolean): void => {
    // Warm drains take the "before" counters while the warm-up's last batch settles: a few commands of skew.
    if (probe && snapshot) before = takeSnapshot(probe);
    resetClientCounts();
    cpu0 = process.cpuUsage();
    elu0 = performance.eventLoopUtilization();
    t0 = nowMs();
  };
  const worker = await engine.createWorker(opts, {
    concurrency,
    onStart: () => {
      started++;
    },
    onCompleted: () => {
      ++completed;
      if (completed > warm && (completed - warm) % tenth === 0 && tenthsAt.length < 10) tenthsAt.push(nowMs());
      if (completed === warm && warm > 0) openWindow(true);
      if (completed === n + warm) done.resolve();
    },
  });

  const cost = opts.measureCost === true && engine.usesRedis;
  if (cost) {
    probe = new Redis(opts.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    excludeFromCount(probe);
    await probe.connect();
  }
  const rss = startRssSampler(opts.rssIntervalMs ?? 50);
  if (warm === 0) {
    if (probe) before = Promise.resolve(await takeSnapshot(probe));
    openWindow(false);
  }
  worker.run();
  await withTimeout(done.promise, opts.timeoutMs ?? 300_000, `drain of ${n + warm} tasks (${completed} done)`);
  const ms = nowMs() - t0;
  countGc(gc.takeRecords());
  gc.disconnect();
  // Every thread of the worker process (lease keeper, GC helpers, libuv pool), user and system.
  const cpu = process.cpuUsage(cpu0);
  // Share of the drain the main thread was busy: near 1 means the worker's JavaScript is the limit, lower
  // means it waited (for Redis, or for its own pipeline).
  const elu = performance.eventLoopUtilization(elu0).utilization;
  const client = readClientCounts();
  const after = probe ? await takeSnapshot(probe) : undefined;
  const beforeSnap = before ? await before : undefined;
  const mem = rss.stop();

  const data: Record<string, unknown> = {
    n,
    warmup: warm,
    concurrency,
    ms,
    rate: (n / ms) * 1000,
    started,
    peakRssMb: mem.peakMb,
    baseRssMb: mem.baseMb,
    cpuUsPerJob: (cpu.user + cpu.system) / n,
    eventLoopUtilization: elu,
    gcPauseMs: gcMs,
    gcCount,
    tenthRates: tenthsAt.map((at, i) => Math.round((tenth / (at - (i === 0 ? t0 : tenthsAt[i - 1]!))) * 1000)),
  };
  if (beforeSnap && after) {
    const delta = diffSnapshots(beforeSnap, after);
    const top = Object.entries(delta.calls)
      .sort((a, b) => b[1] - a[1])
      .map(([name, calls]) => ({ name, perJob: calls / n }));
    data.cost = {
      serverCommandsPerJob: delta.total / n,
      redisCpuUsPerJob: (delta.cpuSec * 1e6) / n,
      commandstatsCallsPerJob: Object.values(delta.calls).reduce((a, b) => a + b, 0) / n,
      scriptCallsPerJob: delta.scriptCalls / n,
      clientCommandsPerJob: client.commands / n,
      roundTripsPerJob: client.roundTrips / n,
      scriptInternalPerJob: (delta.total - client.commands) / n,
      serverByCommand: top,
      clientByCommand: Object.entries(client.byCommand)
        .sort((a, b) => b[1] - a[1])
        .map(([name, calls]) => ({ name, perJob: calls / n })),
    };
  }
  await worker.close();
  probe?.disconnect();
  return data;
}

async function latencyWorker(engine: BenchEngine, opts: ChildOptions): Promise<Record<string, unknown>> {
  const count = need(opts.count, "count");
  const warmup = opts.warmup ?? 0;
  const total = count + warmup;
  const lat: number[] = [];
  let completed = 0;
  const done = deferred();
  const worker = await engine.createWorker(opts, {
    concurrency: need(opts.concurrency, "concurrency"),
    onStart: (p) => {
      const at = nowMs();
      if (!p.warmup && typeof p.t === "number") lat.push(at - p.t);
    },
    onCompleted: () => {
      if (++completed === total) done.resolve();
    },
  });
  worker.run();
  emit({ type: "ready" });
  await withTimeout(done.promise, opts.timeoutMs ?? 300_000, `latency run (${completed}/${total} done)`);
  await worker.close();
  return {
    count: lat.length,
    p50: percentile(lat, 50),
    p90: percentile(lat, 90),
    p99: percentile(lat, 99),
    max: max(lat),
    mean: mean(lat),
  };
}

async function latencySender(engine: BenchEngine, opts: ChildOptions): Promise<Record<string, unknown>> {
  const count = need(opts.count, "count");
  const warmup = opts.warmup ?? 0;
  const gap = opts.gapMs ?? 0;
  const producer = await engine.openProducer(opts);
  const t0 = nowMs();
  for (let i = 0; i < warmup + count; i++) {
    const isWarmup = i < warmup;
    await producer.send({ i, t: nowMs(), ...(isWarmup ? { warmup: true } : {}) });
    if (gap > 0) await new Promise((r) => setTimeout(r, gap));
  }
  const ms = nowMs() - t0;
  await producer.close();
  return { count, warmup, ms, sendRate: ((warmup + count) / ms) * 1000 };
}

const CASES: Record<ChildCase, (e: BenchEngine, o: ChildOptions) => Promise<Record<string, unknown>>> = {
  produce,
  single,
  drain,
  "latency-worker": latencyWorker,
  "latency-sender": latencySender,
};

/**
 * Entry point of an engine file: `await runEngineMain(engine)` at its top level. Reads the case and options
 * from argv, prints the result line, exits (forcibly: some clients keep timers or sockets open).
 */
export async function runEngineMain(load: () => Promise<BenchEngine>): Promise<never> {
  const [caseName, json] = process.argv.slice(2);
  let code = 0;
  try {
    if (!caseName || !(caseName in CASES)) throw new Error(`unknown case ${JSON.stringify(caseName)}`);
    const opts = JSON.parse(json ?? "{}") as ChildOptions;
    installClientCounter();
    const engine = await load();
    const data = await CASES[caseName as ChildCase](engine, opts);
    data.engineVersion = await engine.version();
    emit({ type: "result", case: caseName as ChildCase, data });
  } catch (err) {
    const notImplemented = isNotImplemented(err);
    emit({ type: "error", notImplemented, message: (err as Error)?.stack ?? String(err) });
    code = notImplemented ? EXIT_NOT_IMPLEMENTED : 1;
  }
  // Let stdout drain before exiting.
  await new Promise<void>((r) => process.stdout.write("", () => r()));
  process.exit(code);
}
