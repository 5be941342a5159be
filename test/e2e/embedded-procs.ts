/**
 * Child processes for the e2e tests: `bin/qworker.js` (the real CLI, from the sources) and TypeScript
 * helper scripts run through tsx. Output is captured; every child still alive when the test process exits
 * is SIGKILLed, so a failed test never leaves a worker behind.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BIN = fileURLToPath(new URL("../../bin/qworker.js", import.meta.url));

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

export interface Child {
  readonly proc: ChildProcess;
  /** Exit code, or the signal name when killed by one. */
  readonly exited: Promise<number | string>;
  stdout(): string;
  stderr(): string;
  /** SIGKILL if still running, then wait for the exit. */
  kill(): Promise<void>;
}

/** The environment without any QWORKER_* setting of the test runner's, plus `extra`. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("QWORKER_")) env[k] = v;
  return { ...env, NO_COLOR: "1", ...extra };
}

export function start(args: string[], opts: SpawnOptions = {}): Child {
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], ...opts });
  live.add(proc);
  let out = "";
  let err = "";
  proc.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) =>
    proc.on("exit", (code, signal) => {
      live.delete(proc);
      resolve(code ?? signal ?? "unknown");
    }),
  );
  return {
    proc,
    exited,
    stdout: () => out,
    stderr: () => err,
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      await exited;
    },
  };
}

/** `qworker <args>` from the current sources. */
export function qworker(args: string[], opts: SpawnOptions & { env?: NodeJS.ProcessEnv } = {}): Child {
  return start([BIN, ...args], { ...opts, env: { QWORKER_FROM_SOURCE: "1", ...(opts.env ?? cleanEnv()) } });
}

/** A TypeScript helper script, run through tsx. */
export function script(file: string, args: string[], env: NodeJS.ProcessEnv = cleanEnv()): Child {
  return start(["--import", "tsx", file, ...args], { env });
}

/** Poll `check` every `everyMs` until it returns true; throws naming `what` after `timeoutMs`. */
export async function waitFor(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
