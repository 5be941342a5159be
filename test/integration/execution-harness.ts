/**
 * Shared by the execution-*.test.ts files: real `qworker` CLI processes (from the sources) against a
 * private redis-server, each in its own temp directory with its own config file, running the tasks in
 * test/fixtures/tasks-exec, which record every run in a JSON-lines file the test reads.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const bin = fileURLToPath(new URL("../../bin/qworker.js", import.meta.url));
export const EXEC_TASKS = fileURLToPath(new URL("../fixtures/tasks-exec", import.meta.url));
export const DEMO_TASKS = fileURLToPath(new URL("../../tasks", import.meta.url));

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

export interface Run {
  task: string;
  id: string;
  pid: number;
  t: number;
  phase?: string;
}

export interface LogLine {
  level: string;
  msg: string;
  /** Epoch ms (the pretty format prints the UTC time of day; today's date is assumed). */
  time: number;
}

// The pretty format is written synchronously (JSON lines are buffered), so a test sees each line at once.
const PRETTY = /^\[(\d\d):(\d\d):(\d\d)\.(\d{3})\] (\w+)\s+(.*)$/;

export class ExecEnv {
  readonly dir = mkdtempSync(join(tmpdir(), "qw-exec-"));
  readonly runsFile = join(this.dir, "runs.jsonl");
  readonly configFile = join(this.dir, "qworker.yaml");

  constructor(
    readonly brokerUrl: string,
    settings: Record<string, unknown> = {},
  ) {
    const lines = Object.entries({ broker_url: brokerUrl, log_format: "pretty", ...settings }).map(([k, v]) => `${k}: ${JSON.stringify(v)}`);
    writeFileSync(this.configFile, `${lines.join("\n")}\n`);
  }

  runs(): Run[] {
    if (!existsSync(this.runsFile)) return [];
    return readFileSync(this.runsFile, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Run);
  }

  private env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return { ...process.env, QWORKER_FROM_SOURCE: "1", QWORKER_TEST_RUNS: this.runsFile, QWORKER_HEALTH_DIR: this.dir, NO_COLOR: "1", ...extra };
  }

  /** Run a CLI command to completion; resolves with its exit code and output. */
  cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const p = spawn(process.execPath, [bin, ...args, "--config", this.configFile], { cwd: this.dir, env: this.env(env), stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      p.on("exit", (code) => resolve({ code, stdout, stderr }));
    });
  }

  async send(task: string, flags: string[] = []): Promise<string> {
    const r = await this.cli(["send", task, ...flags]);
    if (r.code !== 0) throw new Error(`qworker send failed (${r.code}): ${r.stderr}`);
    return r.stdout.trim();
  }

  worker(flags: string[] = [], env: Record<string, string> = {}): WorkerProc {
    const p = spawn(process.execPath, [bin, "worker", "--config", this.configFile, ...flags], { cwd: this.dir, env: this.env(env), stdio: ["ignore", "ignore", "pipe"] });
    live.add(p);
    return new WorkerProc(p);
  }

  cleanup(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export class WorkerProc {
  private err = "";
  readonly exited: Promise<number | null>;

  constructor(readonly proc: ChildProcess) {
    proc.stderr!.on("data", (d: Buffer) => (this.err += d.toString()));
    this.exited = new Promise((resolve) =>
      proc.on("exit", (code) => {
        live.delete(proc);
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.proc.pid!;
  }

  logs(): LogLine[] {
    const out: LogLine[] = [];
    const day = new Date();
    for (const line of this.err.split("\n")) {
      const m = PRETTY.exec(line);
      if (!m) continue;
      const time = Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]));
      out.push({ level: m[5]!, msg: m[6]!, time });
    }
    return out;
  }

  stderr(): string {
    return this.err;
  }

  /** Resolve with the first log line whose message matches, or reject after timeoutMs with the log. */
  async waitForLog(re: RegExp, timeoutMs = 20_000): Promise<LogLine> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.logs().find((l) => re.test(l.msg));
      if (hit) return hit;
      if (Date.now() > until) throw new Error(`no log line matching ${re} within ${timeoutMs} ms; stderr:\n${this.err.slice(-4000)}`);
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const t = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Live child processes of a pid (Linux /proc), for counting a process pool's children. */
export function childPids(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
    return text === "" ? [] : text.split(/\s+/).map(Number);
  } catch {
    return [];
  }
}
