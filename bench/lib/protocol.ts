/**
 * The engine protocol between the orchestrator (bench/run.ts) and one engine process.
 *
 * The orchestrator runs `node --import tsx bench/engines/<engine>.ts <case> <json ChildOptions>` with the
 * repository root as working directory. The child writes JSON lines on stdout (anything else it prints
 * goes to stderr):
 *   {"type":"ready"}                         — latency-worker only: consuming, send now
 *   {"type":"result","case":…,"data":{…}}   — exactly once, then the child exits 0
 *   {"type":"error","notImplemented":bool,"message":…} — then exit code 3 (not implemented) or 1
 * Every engine process measures itself (clocks, RSS, Redis counters), so numbers never include the
 * orchestrator's overhead or process start-up.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export type ChildCase = "produce" | "single" | "drain" | "latency-worker" | "latency-sender";

export interface ChildOptions {
  /** redis://127.0.0.1:PORT of the harness's private server (every engine gets it, SQLite ignores it). */
  redisUrl: string;
  /** An empty scratch dir for this scenario (shared by its producer and its worker): SQLite files go here. */
  dataDir: string;
  queue: string;
  /** produce: tasks to enqueue; drain: tasks to wait for. */
  n?: number;
  /** produce: tasks per bulk call. */
  batch?: number;
  /** single: sequential sends. latency-*: measured sends. */
  count?: number;
  /** latency-*: unmeasured sends first (connection set-up, JIT, script loading). */
  warmup?: number;
  /** latency-sender: pause between sends in ms (0: next send right after the previous one resolves). */
  gapMs?: number;
  concurrency?: number;
  /**
   * drain: tasks run before the clock starts (the producer enqueued n + drainWarmup); the clock, the CPU
   * and the Redis counters cover the n that follow. 0: a cold drain, as issue 7 defines B1.
   */
  drainWarmup?: number;
  /** drain: take Redis counters around the drain. */
  measureCost?: boolean;
  rssIntervalMs?: number;
  /** The child gives up (error) after this long. */
  timeoutMs?: number;
  /** qworker engines: the worker's loglevel (lines are formatted and written to /dev/null). */
  loglevel?: "debug" | "info" | "warning" | "error";
}

export type ChildMessage =
  | { type: "ready" }
  | { type: "result"; case: ChildCase; data: Record<string, unknown> }
  | { type: "error"; notImplemented: boolean; message: string };

export const EXIT_NOT_IMPLEMENTED = 3;

export class ChildFailed extends Error {
  constructor(
    message: string,
    readonly notImplemented: boolean,
  ) {
    super(message);
  }
}

const benchDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const repoRoot = path.dirname(benchDir);

export function engineEntry(engine: string): string {
  return path.join(benchDir, "engines", `${engine}.ts`);
}

/** Where engine processes get their code: compiled JavaScript (bench/lib/compile.ts) or TypeScript via tsx. */
let compiledRoot: string | undefined;
/** Extra node flags for engine processes (e.g. --cpu-prof), by child case. */
let extraNodeFlags: Partial<Record<ChildCase, string[]>> = {};

export function useCompiledEngines(root: string | undefined): void {
  compiledRoot = root;
}

export function setNodeFlags(flags: Partial<Record<ChildCase, string[]>>): void {
  extraNodeFlags = flags;
}

function childArgs(engine: string, childCase: ChildCase): string[] {
  const flags = extraNodeFlags[childCase] ?? [];
  if (compiledRoot) return [...flags, path.join(compiledRoot, "bench", "engines", `${engine}.js`)];
  return [...flags, "--import", "tsx", engineEntry(engine)];
}

export interface RunChildOptions {
  onReady?: () => void;
  /** Kill the child after this long (default: options.timeoutMs + 30 s). */
  killAfterMs?: number;
  /** Forward the child's stderr to ours (default true). */
  echoStderr?: boolean;
  /** Kill the child when this aborts (the promise then rejects). */
  signal?: AbortSignal;
}

/** Spawn one engine process and resolve with its result's data. */
export function runChild(
  engine: string,
  childCase: ChildCase,
  options: ChildOptions,
  run: RunChildOptions = {},
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...childArgs(engine, childCase), childCase, JSON.stringify(options)],
      { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NODE_ENV: "production" } },
    );
    let result: Record<string, unknown> | undefined;
    let failure: ChildFailed | undefined;
    let stderrTail = "";
    let stdoutBuf = "";
    const killAfter = run.killAfterMs ?? (options.timeoutMs ?? 300_000) + 30_000;
    const timer = setTimeout(() => {
      failure ??= new ChildFailed(`${engine} ${childCase}: killed after ${killAfter} ms`, false);
      child.kill("SIGKILL");
    }, killAfter);

    const onAbort = (): void => {
      failure ??= new ChildFailed(`${engine} ${childCase}: aborted`, false);
      child.kill("SIGKILL");
    };
    if (run.signal?.aborted) onAbort();
    else run.signal?.addEventListener("abort", onAbort, { once: true });

    const onLine = (line: string): void => {
      const trimmed = line.trim();
      if (!trimmed.startsWith("{")) {
        if (trimmed !== "") process.stderr.write(`[${engine} ${childCase}] ${trimmed}\n`);
        return;
      }
      let msg: ChildMessage;
      try {
        msg = JSON.parse(trimmed) as ChildMessage;
      } catch {
        process.stderr.write(`[${engine} ${childCase}] ${trimmed}\n`);
        return;
      }
      if (msg.type === "ready") run.onReady?.();
      else if (msg.type === "result") result = msg.data;
      else if (msg.type === "error") failure = new ChildFailed(msg.message, msg.notImplemented);
    };
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      stdoutBuf += chunk;
      let nl: number;
      while ((nl = stdoutBuf.indexOf("\n")) >= 0) {
        onLine(stdoutBuf.slice(0, nl));
        stdoutBuf = stdoutBuf.slice(nl + 1);
      }
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-4000);
      if (run.echoStderr !== false) process.stderr.write(chunk.replace(/^(?=.)/gm, `[${engine} ${childCase}] `));
    });
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new ChildFailed(`${engine} ${childCase}: could not start: ${err.message}`, false));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      run.signal?.removeEventListener("abort", onAbort);
      if (stdoutBuf.trim() !== "") onLine(stdoutBuf);
      if (failure) return reject(failure);
      if (code === 0 && result) return resolve(result);
      const why = signal ? `signal ${signal}` : `exit code ${code}`;
      reject(
        new ChildFailed(
          `${engine} ${childCase}: ${why} without a result${stderrTail ? `\n${stderrTail.trim()}` : ""}`,
          code === EXIT_NOT_IMPLEMENTED,
        ),
      );
    });
  });
}
