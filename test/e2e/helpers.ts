/**
 * Run the real CLI (`node bin/qworker.js …`) as a user would, with bounded waits everywhere: waiting for
 * a log line, for an exit, for a condition. Every child is started through `setpriv --pdeathsig SIGKILL`
 * where available and killed when this process exits, so none outlives the test run.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BIN = fileURLToPath(new URL("../../bin/qworker.js", import.meta.url));

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

let setprivOk: boolean | undefined;
function pdeathsigPrefix(): string[] {
  setprivOk ??= process.platform === "linux" && spawnSync("setpriv", ["--pdeathsig", "SIGKILL", "true"], { stdio: "ignore" }).status === 0;
  return setprivOk ? ["setpriv", "--pdeathsig", "SIGKILL"] : [];
}

/** Environment for a child: the parent's minus any QWORKER_* setting, so the developer's shell cannot leak in. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("QWORKER_") && k !== "FORCE_COLOR") env[k] = v;
  return { ...env, NO_COLOR: "1", ...extra };
}

export interface CliProcess {
  readonly proc: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code, or the signal name when killed by one. */
  readonly exited: Promise<number | NodeJS.Signals>;
  stdout(): string;
  stderr(): string;
  /** Resolve with the first stderr line matching `pattern` (already seen or to come); reject after timeoutMs. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string>;
  signal(sig: NodeJS.Signals): void;
}

export interface SpawnOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** The CLI script to run instead of this checkout's (an installed copy of the package, say). */
  bin?: string;
}

export function spawnCli(args: string[], opts: SpawnOptions = {}): CliProcess {
  const [cmd, ...pre] = [...pdeathsigPrefix(), process.execPath];
  const proc = spawn(cmd!, [...pre, opts.bin ?? BIN, ...args], { cwd: opts.cwd ?? ROOT, env: cleanEnv(opts.env), stdio: ["ignore", "pipe", "pipe"] });
  live.add(proc);
  let out = "";
  let err = "";
  const waiters = new Set<() => void>();
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
    for (const w of waiters) w();
  });
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    proc.on("close", (code, sig) => {
      live.delete(proc);
      for (const w of waiters) w();
      resolve(code ?? sig ?? "SIGKILL");
    });
  });
  let done = false;
  void exited.then(() => (done = true));
  return {
    proc,
    pid: proc.pid!,
    exited,
    stdout: () => out,
    stderr: () => err,
    signal: (sig) => {
      if (!done) proc.kill(sig);
    },
    waitForLine(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const line = err.split("\n").find((l) => pattern.test(l));
          if (line !== undefined) {
            finish();
            resolve(line);
            return true;
          }
          if (done) {
            finish();
            reject(new Error(`process exited before a line matched ${pattern}; stderr:\n${err}`));
            return true;
          }
          return false;
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`no line matched ${pattern} within ${timeoutMs} ms; stderr:\n${err}`));
        }, timeoutMs);
        const finish = () => {
          clearTimeout(timer);
          waiters.delete(onData);
        };
        const onData = () => void check();
        if (!check()) waiters.add(onData);
      });
    },
  };
}

export interface CliResult {
  code: number | NodeJS.Signals;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Run a short CLI command to completion; SIGKILL it (and fail the assertion that follows) after timeoutMs. */
export async function runCli(args: string[], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<CliResult> {
  const start = Date.now();
  const p = spawnCli(args, opts);
  const timer = setTimeout(() => p.signal("SIGKILL"), opts.timeoutMs ?? 15_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stdout: p.stdout(), stderr: p.stderr(), ms: Date.now() - start };
}

/** Poll `fn` until it returns a value other than undefined, or fail after timeoutMs with `what`. */
export async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs: number, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Parse pino JSON lines from a worker's stderr (other lines skipped). */
export function jsonLogs(stderr: string): { levelName?: string; msg?: string; err?: { stack?: string } }[] {
  const out: { levelName?: string; msg?: string }[] = [];
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as { levelName?: string; msg?: string });
    } catch {
      // a partial line
    }
  }
  return out;
}
