/**
 * Real `qworker worker` processes for the fault tests: spawned through bin/qworker.js from the sources
 * (QWORKER_FROM_SOURCE=1), with the fault fixture tasks, logging JSON lines at warning level. Each handle
 * can be SIGKILLed, SIGTERMed and awaited; every child is killed when the test process exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { readHealthRecords } from "../../src/worker/health-file.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const bin = fileURLToPath(new URL("../../bin/qworker.js", import.meta.url));
export const FAULT_TASKS_DIR = fileURLToPath(new URL("../fixtures/tasks-faults", import.meta.url));

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

export interface WorkerProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Everything the worker logged so far (stderr). */
  stderr(): string;
  /** Parsed JSON log lines (lines that are not JSON are skipped). */
  logs(): { level?: number; levelName?: string; msg?: string }[];
  kill9(): Promise<void>;
  /**
   * Resolves once the worker is fully started: its watchdog wrote the health file, which happens in the
   * same tick as the signal handlers are installed (a SIGTERM before that would end it like a crash).
   */
  ready(timeoutMs?: number): Promise<void>;
  /** SIGTERM; a second call sends a second signal (cold shutdown). */
  term(): void;
}

export interface WorkerSpawnOptions {
  broker: string;
  outDir: string;
  concurrency?: number;
  queues?: string[];
  /** More QWORKER_* settings, e.g. { QWORKER_LEASE_TIMEOUT: "5" }. */
  env?: Record<string, string>;
  loglevel?: "debug" | "info" | "warning" | "error";
}

export function spawnWorker(opts: WorkerSpawnOptions): WorkerProcess {
  const args = [
    bin,
    "worker",
    "--broker", opts.broker,
    "--tasks", FAULT_TASKS_DIR,
    "--concurrency", String(opts.concurrency ?? 10),
    "--log-format", "json",
    "--loglevel", opts.loglevel ?? "warning",
    ...(opts.queues ? ["--queues", opts.queues.join(",")] : []),
  ];
  const proc = spawn(process.execPath, args, {
    cwd: root,
    stdio: ["ignore", "ignore", "pipe"],
    env: {
      ...process.env,
      QWORKER_FROM_SOURCE: "1",
      QWORKER_FAULT_OUT: opts.outDir,
      QWORKER_HEALTH_DIR: opts.outDir,
      NO_COLOR: "1",
      ...opts.env,
    },
  });
  live.add(proc);
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    proc.on("exit", (code) => {
      live.delete(proc);
      resolve(code);
    }),
  );
  return {
    proc,
    pid: proc.pid!,
    exited,
    stderr: () => err,
    logs: () =>
      err
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .flatMap((l) => {
          try {
            return [JSON.parse(l) as { level?: number; levelName?: string; msg?: string }];
          } catch {
            return [];
          }
        }),
    async kill9() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGKILL");
      await exited;
    },
    async ready(timeoutMs = 60_000) {
      await waitUntil(`worker ${proc.pid} to start`, timeoutMs, () => {
        if (proc.exitCode !== null) throw new Error(`worker exited (${proc.exitCode}) while starting: ${err.trim().split("\n").slice(-3).join(" | ")}`);
        return readHealthRecords(opts.outDir).some((e) => e.record.pid === proc.pid);
      });
    },
    term() {
      proc.kill("SIGTERM");
    },
  };
}

/** Poll `check` every 50 ms until it returns true; throws with `what` after `timeoutMs`. */
export async function waitUntil(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
