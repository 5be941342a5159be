/**
 * Benchmark orchestrator: `npm run bench -- [options]` (see bench/README.md, or --help).
 *
 * Starts a private redis-server (persistence off) through test/support/redis-server.ts, then for each
 * repetition and each engine runs the cases as separate engine processes (bench/lib/protocol.ts),
 * flushing Redis before each scenario. Prints one plain-text table and appends it, with versions and
 * method, to bench/results/<YYYY-MM-DD>.md.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { appendFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { startRedisServer, type RedisServerHandle } from "../test/support/redis-server.ts";
import { compileForBench } from "./lib/compile.ts";
import { ChildFailed, repoRoot, runChild, setNodeFlags, useCompiledEngines, type ChildOptions } from "./lib/protocol.ts";
import { redisVersion } from "./lib/redis-info.ts";
import { fmt, median, medianRatio } from "./lib/stats.ts";
import { renderMarkdown, renderText, type TableSpec } from "./lib/table.ts";

const ALL_CASES = ["b1", "enqueue", "b2", "b3", "cost"] as const;
type CaseName = (typeof ALL_CASES)[number];
const ALL_ENGINES = ["qworker", "bullmq", "qworker-sqlite"] as const;
const PEER = "bullmq";
/** B3 (peak RSS) and the Redis cost are taken from the drain at this concurrency. */
const REFERENCE_CONCURRENCY = 10;

const HELP = `Usage: npm run bench -- [options]

  --n N                 tasks per throughput drain (default 20000; --quick: 2000)
  --concurrency LIST    worker concurrencies for B1 (default 1,10,100)
  --cases LIST          b1,enqueue,b2,b3,cost (default: all)
  --engines LIST        qworker,bullmq,qworker-sqlite (default: all; unavailable ones are skipped)
  --repeat R            repetitions per case; medians are reported (default 3)
  --single N            sequential single sends for the enqueue case (default 2000; --quick: 200)
  --latency N           measured sends for B2 (default 1000; --quick: 200)
  --warmup N            unmeasured sends before B2 (default 20)
  --drain-warmup W      B1: run W more tasks before each drain's clock starts (default 0: a cold
                        drain, as issue 7 defines B1; the results then say "after W warm-up tasks")
  --gap MS              pause between B2 sends (default 0)
  --batch N             tasks per bulk call (default 1000)
  --timeout S           per engine process (default 300)
  --runtime R           compiled (default: engines run tsc output, as deployed) or tsx
  --loglevel L          qworker worker loglevel: debug, info (default, the product's), warning, error
  --profile DIR         write a --cpu-prof profile of every drain process into DIR
  --profile-interval US sampling interval of --profile in microseconds (default 100; Node's own is 1000,
                        too coarse for a drain of a few hundred ms)
  --quick               small sizes for a smoke run
  --out FILE            results file (default bench/results/<YYYY-MM-DD>.md; appended to)
  --no-write            print only
  -h, --help
`;

interface Config {
  n: number;
  concurrency: number[];
  cases: Set<CaseName>;
  engines: string[];
  repeat: number;
  single: number;
  latency: number;
  warmup: number;
  drainWarmup: number;
  gapMs: number;
  batch: number;
  timeoutMs: number;
  quick: boolean;
  out: string | null;
  runtime: "compiled" | "tsx";
  loglevel: NonNullable<ChildOptions["loglevel"]>;
  profileDir: string | null;
  profileIntervalUs: number;
}

function parseList(s: string): string[] {
  return s
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "");
}

function parsePositiveInt(s: string | undefined, name: string, fallback: number, allowZero = false): number {
  if (s === undefined) return fallback;
  const v = Number(s);
  if (!Number.isInteger(v) || v < (allowZero ? 0 : 1)) throw new Error(`--${name} must be a ${allowZero ? "non-negative" : "positive"} integer, got ${s}`);
  return v;
}

function parseConfig(argv: string[]): Config {
  const { values } = parseArgs({
    args: argv,
    options: {
      n: { type: "string" },
      concurrency: { type: "string" },
      cases: { type: "string" },
      engines: { type: "string" },
      repeat: { type: "string" },
      single: { type: "string" },
      latency: { type: "string" },
      warmup: { type: "string" },
      "drain-warmup": { type: "string" },
      gap: { type: "string" },
      batch: { type: "string" },
      timeout: { type: "string" },
      quick: { type: "boolean", default: false },
      runtime: { type: "string", default: "compiled" },
      loglevel: { type: "string", default: "info" },
      profile: { type: "string" },
      "profile-interval": { type: "string" },
      out: { type: "string" },
      "no-write": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const quick = values.quick === true;
  const cases = new Set<CaseName>();
  for (const c of parseList(values.cases ?? ALL_CASES.join(","))) {
    if (!(ALL_CASES as readonly string[]).includes(c)) throw new Error(`unknown case ${c} (known: ${ALL_CASES.join(", ")})`);
    cases.add(c as CaseName);
  }
  const engines = parseList(values.engines ?? ALL_ENGINES.join(","));
  for (const e of engines) {
    if (!existsSync(path.join(repoRoot, "bench", "engines", `${e}.ts`))) throw new Error(`unknown engine ${e} (no bench/engines/${e}.ts)`);
  }
  const concurrency = parseList(values.concurrency ?? "1,10,100").map((c) => parsePositiveInt(c, "concurrency", 1));
  const date = new Date().toISOString().slice(0, 10);
  const runtime = values.runtime;
  if (runtime !== "compiled" && runtime !== "tsx") throw new Error(`--runtime must be compiled or tsx, got ${runtime}`);
  const loglevel = values.loglevel;
  if (loglevel !== "debug" && loglevel !== "info" && loglevel !== "warning" && loglevel !== "error") {
    throw new Error(`--loglevel must be debug, info, warning or error, got ${loglevel}`);
  }
  return {
    runtime,
    loglevel,
    profileDir: values.profile === undefined ? null : path.resolve(values.profile),
    profileIntervalUs: parsePositiveInt(values["profile-interval"], "profile-interval", 100),
    n: parsePositiveInt(values.n, "n", quick ? 2000 : 20_000),
    concurrency,
    cases,
    engines,
    repeat: parsePositiveInt(values.repeat, "repeat", 3),
    single: parsePositiveInt(values.single, "single", quick ? 200 : 2000),
    latency: parsePositiveInt(values.latency, "latency", quick ? 200 : 1000),
    warmup: parsePositiveInt(values.warmup, "warmup", 20, true),
    drainWarmup: parsePositiveInt(values["drain-warmup"], "drain-warmup", 0, true),
    gapMs: parsePositiveInt(values.gap, "gap", 0, true),
    batch: parsePositiveInt(values.batch, "batch", 1000),
    timeoutMs: parsePositiveInt(values.timeout, "timeout", 300) * 1000,
    quick,
    out: values["no-write"] ? null : path.resolve(values.out ?? path.join(repoRoot, "bench", "results", `${date}.md`)),
  };
}

// ---------------------------------------------------------------------------------------------- metrics

interface Metric {
  key: string;
  label: string;
  unit: string;
  better: "higher" | "lower";
  samples: Map<string, number[]>;
}

class Metrics {
  readonly list: Metric[] = [];
  private byKey = new Map<string, Metric>();

  define(key: string, label: string, unit: string, better: "higher" | "lower"): void {
    if (this.byKey.has(key)) return;
    const m: Metric = { key, label, unit, better, samples: new Map() };
    this.list.push(m);
    this.byKey.set(key, m);
  }

  /** Sample number `run` (0-based repetition) of a metric for an engine; NaN marks a failed run. */
  record(key: string, engine: string, run: number, value: number): void {
    const m = this.byKey.get(key);
    if (!m) throw new Error(`metric ${key} not defined`);
    const arr = m.samples.get(engine) ?? [];
    while (arr.length < run) arr.push(Number.NaN);
    arr[run] = value;
    m.samples.set(engine, arr);
  }
}

function finite(values: number[] | undefined): number[] {
  return (values ?? []).filter((v) => Number.isFinite(v));
}

// ---------------------------------------------------------------------------------------------- running

interface RunState {
  cfg: Config;
  redis: RedisServerHandle;
  admin: Redis;
  scratch: string;
  metrics: Metrics;
  skipped: Map<string, string>;
  failures: string[];
  versions: Map<string, string>;
  costDetail: Map<string, unknown>;
  seq: number;
  loadStart: number;
}

async function freshScenario(st: RunState, engine: string): Promise<ChildOptions> {
  await st.admin.flushall();
  const dataDir = path.join(st.scratch, `${engine}-${++st.seq}`);
  await mkdir(dataDir, { recursive: true });
  return { redisUrl: st.redis.url, dataDir, queue: "bench", timeoutMs: st.cfg.timeoutMs, loglevel: st.cfg.loglevel };
}

function noteVersion(st: RunState, engine: string, data: Record<string, unknown>): void {
  if (typeof data.engineVersion === "string") st.versions.set(engine, data.engineVersion);
}

function num(data: Record<string, unknown>, key: string): number {
  const v = data[key];
  return typeof v === "number" ? v : Number.NaN;
}

/** The concurrencies drained per repetition: B1's, plus the reference one when only B3 or cost asks for it. */
function drainConcurrencies(cfg: Config): number[] {
  const concs = cfg.cases.has("b1") ? [...cfg.concurrency] : [];
  if ((cfg.cases.has("b3") || cfg.cases.has("cost")) && !concs.includes(REFERENCE_CONCURRENCY)) concs.push(REFERENCE_CONCURRENCY);
  return concs;
}

/** One drain at concurrency `c`; returns whether its producer's rate was recorded as the bulk enqueue rate. */
async function runDrain(st: RunState, engine: string, run: number, c: number, bulkWanted: boolean): Promise<boolean> {
  const { cfg, metrics } = st;
  const opts = await freshScenario(st, engine);
  const prod = await runChild(engine, "produce", { ...opts, n: cfg.n + cfg.drainWarmup, batch: cfg.batch });
  noteVersion(st, engine, prod);
  const recordBulk = cfg.cases.has("enqueue") && bulkWanted && cfg.drainWarmup === 0;
  if (recordBulk) metrics.record("enqueue-bulk", engine, run, num(prod, "rate"));
  // Two INFO calls around the drain, outside its clock's hot path: cheap enough to take at every concurrency.
  const measureCost = cfg.cases.has("cost");
  const d = await runChild(engine, "drain", { ...opts, n: cfg.n, drainWarmup: cfg.drainWarmup, concurrency: c, measureCost, rssIntervalMs: 50 });
  const tenths = Array.isArray(d.tenthRates) ? (d.tenthRates as number[]) : [];
  const gcShare = num(d, "gcPauseMs") / num(d, "ms");
  log(
    `  ${engine} drain c=${c}: ${fmt(num(d, "rate"))} jobs/s, peak RSS ${fmt(num(d, "peakRssMb"))} MB, main thread busy ${Math.round(100 * num(d, "eventLoopUtilization"))}%` +
      `, GC ${Math.round(100 * gcShare)}%` +
      (tenths.length === 10 ? `, first/last tenth ${fmt(tenths[0]!)}/${fmt(tenths[9]!)} jobs/s` : ""),
  );
  if (cfg.cases.has("b1") && cfg.concurrency.includes(c)) metrics.record(`b1-c${c}`, engine, run, num(d, "rate"));
  const costAtC = d.cost as Record<string, unknown> | undefined;
  if (measureCost && costAtC && cfg.concurrency.includes(c)) metrics.record(`cost-rt-c${c}`, engine, run, num(costAtC, "roundTripsPerJob"));
  if (cfg.cases.has("b1") && cfg.concurrency.includes(c)) {
    metrics.record(`cpu-worker-c${c}`, engine, run, num(d, "cpuUsPerJob"));
    metrics.record(`gc-c${c}`, engine, run, 100 * gcShare);
    if (tenths.length === 10) metrics.record(`tenth-last-c${c}`, engine, run, tenths[9]!);
    if (measureCost && costAtC) metrics.record(`cpu-redis-c${c}`, engine, run, num(costAtC, "redisCpuUsPerJob"));
  }
  if (c === REFERENCE_CONCURRENCY) {
    if (cfg.cases.has("b3")) {
      metrics.record("b3-rss", engine, run, num(d, "peakRssMb"));
      metrics.record("b3-rss-base", engine, run, num(d, "baseRssMb"));
    }
    const cost = d.cost as Record<string, unknown> | undefined;
    if (measureCost && cost) {
      for (const k of ["serverCommandsPerJob", "clientCommandsPerJob", "scriptCallsPerJob", "scriptInternalPerJob"]) {
        metrics.record(`cost-${k}`, engine, run, num(cost, k));
      }
      st.costDetail.set(engine, cost);
    }
  }
  return recordBulk;
}

async function runEnqueue(st: RunState, engine: string, run: number, bulkRecorded: boolean): Promise<void> {
  const { cfg, metrics } = st;
  if (!bulkRecorded) {
    const opts = await freshScenario(st, engine);
    const prod = await runChild(engine, "produce", { ...opts, n: cfg.n, batch: cfg.batch });
    noteVersion(st, engine, prod);
    metrics.record("enqueue-bulk", engine, run, num(prod, "rate"));
  }
  const opts = await freshScenario(st, engine);
  const s = await runChild(engine, "single", { ...opts, count: cfg.single });
  noteVersion(st, engine, s);
  metrics.record("enqueue-single", engine, run, num(s, "rate"));
  log(`  ${engine} single sends: ${fmt(num(s, "rate"))}/s`);
}

async function runLatency(st: RunState, engine: string, run: number): Promise<void> {
  const { cfg, metrics } = st;
  const opts = await freshScenario(st, engine);
  const common: ChildOptions = { ...opts, count: cfg.latency, warmup: cfg.warmup, gapMs: cfg.gapMs, concurrency: 10 };
  let onReady!: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  const abort = new AbortController();
  const worker = runChild(engine, "latency-worker", common, { onReady, signal: abort.signal });
  worker.catch(() => undefined); // observed below; never an unhandled rejection
  let w: Record<string, unknown>;
  try {
    // If the worker dies before it is ready, stop waiting for "ready".
    await Promise.race([ready, worker.then(() => undefined)]);
    const sender = await runChild(engine, "latency-sender", common);
    noteVersion(st, engine, sender);
    w = await worker;
  } catch (err) {
    abort.abort();
    throw err;
  }
  metrics.record("b2-p50", engine, run, num(w, "p50"));
  metrics.record("b2-p99", engine, run, num(w, "p99"));
  log(`  ${engine} latency: p50 ${fmt(num(w, "p50"))} ms, p99 ${fmt(num(w, "p99"))} ms`);
}

/**
 * One repetition. Every scenario runs for all engines back to back (the drains at one concurrency, then
 * the next), so the two runs a ratio is taken from are seconds apart, not a whole engine's cases apart:
 * on a shared machine whose speed drifts, that keeps the ratio about the engines. The engine order is
 * reversed every other repetition, so neither always goes first.
 */
async function runRepetition(st: RunState, run: number): Promise<void> {
  const { cfg } = st;
  const order = run % 2 === 0 ? cfg.engines : [...cfg.engines].reverse();
  const bulkRecorded = new Set<string>();
  for (const c of drainConcurrencies(cfg)) {
    for (const engine of order) {
      await step(st, engine, run, "drain", async () => {
        if (await runDrain(st, engine, run, c, !bulkRecorded.has(engine))) bulkRecorded.add(engine);
      });
    }
  }
  if (cfg.cases.has("enqueue")) {
    for (const engine of order) await step(st, engine, run, "enqueue", () => runEnqueue(st, engine, run, bulkRecorded.has(engine)));
  }
  if (cfg.cases.has("b2")) {
    for (const engine of order) await step(st, engine, run, "latency", () => runLatency(st, engine, run));
  }
}

/** Run one engine's part of a scenario; a part not implemented yet is skipped from then on, the rest go on. */
async function step(st: RunState, engine: string, run: number, what: string, fn: () => Promise<void>): Promise<void> {
  const key = `${engine}: ${what}`;
  if (st.skipped.has(key)) return;
  try {
    await fn();
  } catch (err) {
    if (err instanceof ChildFailed && err.notImplemented) {
      const first = (err.message.split("\n")[0] ?? err.message).replace(/^NotImplementedError: /, "");
      st.skipped.set(key, first);
      log(`  ${key} skipped: not implemented (${first})`);
      return;
    }
    const msg = `${key} (run ${run + 1}): ${(err as Error).message}`;
    st.failures.push(msg);
    log(`  FAILED ${msg}`);
  }
}

function defineMetrics(cfg: Config, metrics: Metrics): void {
  if (cfg.cases.has("b1")) {
    for (const c of cfg.concurrency) metrics.define(`b1-c${c}`, `B1 drain ${cfg.n} tasks${cfg.drainWarmup > 0 ? ` after ${cfg.drainWarmup} warm-up tasks` : ""}, concurrency ${c}`, "jobs/s", "higher");
  }
  if (cfg.cases.has("enqueue")) {
    metrics.define("enqueue-bulk", `Enqueue bulk (${cfg.n} in batches of ${cfg.batch})`, "tasks/s", "higher");
    metrics.define("enqueue-single", `Enqueue single, ${cfg.single} sequential sends`, "tasks/s", "higher");
  }
  if (cfg.cases.has("b2")) {
    metrics.define("b2-p50", `B2 send-to-start p50 (c=10, ${cfg.latency} sends)`, "ms", "lower");
    metrics.define("b2-p99", `B2 send-to-start p99 (c=10, ${cfg.latency} sends)`, "ms", "lower");
  }
  if (cfg.cases.has("b3")) {
    metrics.define("b3-rss", `B3 worker peak RSS (drain c=${REFERENCE_CONCURRENCY})`, "MB", "lower");
    metrics.define("b3-rss-base", "B3 worker RSS when ready, before the drain", "MB", "lower");
  }
  if (cfg.cases.has("b1")) {
    for (const cc of cfg.concurrency) {
      metrics.define(`cpu-worker-c${cc}`, `Worker process CPU per job, all threads (drain c=${cc})`, "us", "lower");
      metrics.define(`gc-c${cc}`, `Worker main-thread GC pauses, share of the drain (c=${cc})`, "%", "lower");
      metrics.define(`tenth-last-c${cc}`, `B1 last tenth of the drain, warmed up (c=${cc})`, "jobs/s", "higher");
      if (cfg.cases.has("cost")) metrics.define(`cpu-redis-c${cc}`, `Redis server CPU per job (drain c=${cc})`, "us", "lower");
    }
  }
  if (cfg.cases.has("cost")) {
    for (const cc of cfg.concurrency) metrics.define(`cost-rt-c${cc}`, `Redis round trips per job (drain c=${cc})`, "per job", "lower");
    const c = REFERENCE_CONCURRENCY;
    metrics.define("cost-clientCommandsPerJob", `Redis client commands per job (drain c=${c})`, "per job", "lower");
    metrics.define("cost-serverCommandsPerJob", `Redis commands executed per job, incl. in scripts (drain c=${c})`, "per job", "lower");
    metrics.define("cost-scriptCallsPerJob", `Redis script calls per job (drain c=${c})`, "per job", "lower");
    metrics.define("cost-scriptInternalPerJob", `Redis script-internal commands per job (drain c=${c})`, "per job", "lower");
  }
}

// ---------------------------------------------------------------------------------------------- report

function buildTable(metrics: Metrics, engines: string[]): TableSpec {
  const others = engines.filter((e) => e !== PEER);
  const withPeer = engines.includes(PEER);
  const headers = ["Metric", "Unit", "Better", ...engines, ...(withPeer ? others.map((e) => `${e}/${PEER}`) : [])];
  const rows = metrics.list.map((m) => {
    const cells = [m.label, m.unit, m.better];
    for (const e of engines) cells.push(fmt(median(finite(m.samples.get(e)))));
    if (withPeer) {
      const peer = m.samples.get(PEER) ?? [];
      for (const e of others) {
        const r = medianRatio(m.samples.get(e) ?? [], peer);
        cells.push(Number.isFinite(r) ? `${r.toFixed(2)}x` : "-");
      }
    }
    return cells;
  });
  return { headers, rows, align: headers.map((_, i) => (i < 3 ? "left" : "right")) };
}

function git(args: string[]): string {
  try {
    return execFileSync("git", args, { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return "";
  }
}

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version?: string }).version ?? "?";
  } catch {
    return "?";
  }
}

function markdownReport(st: RunState, table: TableSpec, redisVer: string, startedAt: Date, elapsedS: number): string {
  const { cfg } = st;
  const commit = git(["rev-parse", "--short", "HEAD"]) || "(no commit)";
  const dirty = git(["status", "--porcelain", "--", "src", "bench", ":(exclude)bench/results"]) !== "";
  const cpus = os.cpus();
  const lines: string[] = [];
  lines.push(`## Benchmark ${startedAt.toISOString()}${cfg.quick ? " (quick)" : ""}`, "");
  lines.push(`- git commit: ${commit}${dirty ? " (src/ or bench/ had uncommitted changes)" : ""}`);
  lines.push(`- Node ${process.version}, Redis ${redisVer} (private server, persistence off), ${os.platform()} ${os.release()}`);
  lines.push(`- machine: ${cpus.length} x ${cpus[0]?.model ?? "?"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`);
  const vers = cfg.engines.map((e) => `${e}: ${st.versions.get(e) ?? (e.startsWith("qworker") ? `qworker ${packageVersion()}` : "?")}`);
  lines.push(`- engines: ${vers.join("; ")}`);
  lines.push(
    `- options: n=${cfg.n}${cfg.drainWarmup > 0 ? ` (after ${cfg.drainWarmup} warm-up tasks per drain)` : ""}, concurrency=${cfg.concurrency.join(",")}, cases=${[...cfg.cases].join(",")}, repeat=${cfg.repeat}, ` +
      `single=${cfg.single}, latency=${cfg.latency} (+${cfg.warmup} warm-up, gap ${cfg.gapMs} ms), batch=${cfg.batch}`,
  );
  lines.push(
    `- engines run as ${cfg.runtime === "compiled" ? "JavaScript compiled by tsc (no tsx)" : "TypeScript through tsx (~50 MB more RSS per process)"}; ` +
      `qworker worker loglevel ${cfg.loglevel} (lines formatted and written to /dev/null)`,
  );
  lines.push(`- load average (1 min) at start ${st.loadStart.toFixed(2)}, at end ${os.loadavg()[0]!.toFixed(2)} — other work on the machine skews the numbers`);
  lines.push(`- took ${elapsedS.toFixed(0)} s; values are medians over the repetitions; ratios are medians of per-repetition ratios`);
  lines.push("");
  lines.push(renderMarkdown(table), "");
  if (st.skipped.size > 0) {
    lines.push("Skipped (not implemented yet):", "");
    for (const [e, why] of st.skipped) lines.push(`- ${e}: ${why}`);
    lines.push("");
  }
  if (st.failures.length > 0) {
    lines.push("Failed runs:", "");
    for (const f of st.failures) lines.push(`- ${f.split("\n")[0]}`);
    lines.push("");
  }
  if (st.costDetail.size > 0) {
    lines.push(`Redis commands per job by command (last repetition, drain c=${REFERENCE_CONCURRENCY}):`, "");
    for (const [e, detail] of st.costDetail) {
      const d = detail as { serverByCommand: { name: string; perJob: number }[]; clientByCommand: { name: string; perJob: number }[] };
      const show = (xs: { name: string; perJob: number }[]): string =>
        xs.filter((x) => x.perJob >= 0.001).slice(0, 12).map((x) => `${x.name} ${fmt(x.perJob)}`).join(", ") || "-";
      lines.push(`- ${e} server (INFO commandstats): ${show(d.serverByCommand)}`);
      lines.push(`- ${e} client (sent through ioredis): ${show(d.clientByCommand)}`);
    }
    lines.push("");
  }
  lines.push("<details><summary>samples</summary>", "", "```");
  for (const m of st.metrics.list) {
    for (const e of cfg.engines) {
      const s = m.samples.get(e);
      if (s && s.length > 0) lines.push(`${m.key} ${e}: ${s.map((v) => fmt(v)).join(" ")}`);
    }
  }
  lines.push("```", "", "</details>", "");
  return lines.join("\n");
}

function log(msg: string): void {
  process.stderr.write(msg + "\n");
}

// ---------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const cfg = parseConfig(process.argv.slice(2));
  if (cfg.runtime === "compiled") {
    log("bench: compiling src/ and bench/ with tsc for the engine processes (--runtime tsx skips this)");
    useCompiledEngines(compileForBench());
  }
  if (cfg.profileDir) {
    await mkdir(cfg.profileDir, { recursive: true });
    setNodeFlags({ drain: ["--cpu-prof", `--cpu-prof-interval=${cfg.profileIntervalUs}`, `--cpu-prof-dir=${cfg.profileDir}`] });
  }
  const startedAt = new Date();
  const t0 = Date.now();
  const redis = await startRedisServer({ appendonly: false });
  const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  const scratch = await mkdtemp(path.join(os.tmpdir(), "qworker-bench-"));
  const st: RunState = {
    cfg,
    redis,
    admin,
    scratch,
    metrics: new Metrics(),
    skipped: new Map(),
    failures: [],
    versions: new Map(),
    costDetail: new Map(),
    seq: 0,
    loadStart: os.loadavg()[0] ?? 0,
  };
  defineMetrics(cfg, st.metrics);
  let redisVer = "?";
  try {
    redisVer = await redisVersion(admin);
    log(`bench: redis ${redisVer} at ${redis.url}; engines ${cfg.engines.join(", ")}; cases ${[...cfg.cases].join(", ")}; n=${cfg.n}; repeat=${cfg.repeat}`);
    for (let run = 0; run < cfg.repeat; run++) {
      log(`run ${run + 1}/${cfg.repeat}`);
      await runRepetition(st, run);
    }
  } finally {
    admin.disconnect();
    await redis.cleanup();
    await rm(scratch, { recursive: true, force: true });
  }

  // Engines with no sample at all (nothing implemented yet) get no column.
  const engines = cfg.engines.filter((e) => st.metrics.list.some((m) => finite(m.samples.get(e)).length > 0));
  const table = buildTable(st.metrics, engines);
  const elapsedS = (Date.now() - t0) / 1000;
  process.stdout.write("\n" + renderText(table) + "\n");
  for (const [what, why] of st.skipped) process.stdout.write(`skipped ${what}: ${why}\n`);
  if (st.failures.length > 0) process.stdout.write(`${st.failures.length} run(s) failed, see above\n`);
  if (cfg.out) {
    await mkdir(path.dirname(cfg.out), { recursive: true });
    const report = markdownReport(st, table, redisVer, startedAt, elapsedS);
    if (existsSync(cfg.out)) await appendFile(cfg.out, "\n" + report);
    else await writeFile(cfg.out, `# qworker benchmark results, ${startedAt.toISOString().slice(0, 10)}\n\nSee bench/README.md for what each case measures.\n\n${report}`);
    process.stdout.write(`results written to ${path.relative(process.cwd(), cfg.out)}\n`);
  }
  if (st.failures.length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
