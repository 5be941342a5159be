/**
 * A supervisor (systemd, Kubernetes) that stops a worker it has only just started: the SIGTERM comes while
 * Node still loads the CLI's own modules, before the worker command has installed its handlers. It must
 * still be a clean stop (status 0, one line saying so), not death by signal (143, which reads as a crash).
 *
 * "Just started" is pinned down, not guessed with a timer: a module hook (loaded through NODE_OPTIONS)
 * writes a marker file when bin/qworker.js starts importing the CLI, the first moment its code can act on a
 * signal; the signal goes out then, or a few ms later, all well before the worker's own handlers exist. (A
 * signal before Node has run any of bin/qworker.js, its first tens of ms, still ends it: nothing in the
 * process can see it yet.)
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { jsonLogs, ROOT, spawnCli, waitFor } from "./helpers.ts";

const tmp = mkdtempSync(join(tmpdir(), "qworker-e2e-early-signal-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const HOOKS = join(tmp, "hooks.mjs");
const PRELOAD = join(tmp, "preload.mjs");
writeFileSync(
  HOOKS,
  `import { writeFileSync } from "node:fs";
let marker;
export function initialize(data) { marker = data.marker; }
export async function resolve(specifier, context, next) {
  if (context.parentURL?.endsWith("/bin/qworker.js") && !specifier.startsWith("node:")) writeFileSync(marker, "1");
  return next(specifier, context);
}
`,
);
writeFileSync(
  PRELOAD,
  `import { register } from "node:module";
register(${JSON.stringify(pathToFileURL(HOOKS).href)}, { data: { marker: process.env.QWORKER_TEST_MARKER } });
`,
);

let runs = 0;

async function stopEarly(sig: NodeJS.Signals, delayMs: number, command = "worker"): Promise<{ code: number | NodeJS.Signals; stderr: string }> {
  const dir = join(tmp, `run-${++runs}`);
  mkdirSync(dir);
  const marker = join(dir, "cli-loading");
  const w = spawnCli([command, "--tasks", join(ROOT, "tasks"), ...(command === "worker" ? ["--log-format", "json"] : [])], {
    cwd: dir,
    env: { NODE_OPTIONS: `--import=${pathToFileURL(PRELOAD).href}`, QWORKER_TEST_MARKER: marker },
  });
  await waitFor("bin/qworker.js to start importing the CLI", () => (existsSync(marker) ? true : undefined), 20_000, 2);
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  w.signal(sig);
  const code = await Promise.race([w.exited, new Promise<string>((r) => setTimeout(() => r("still running 10 s after the signal"), 10_000))]);
  if (typeof code === "string") w.signal("SIGKILL");
  return { code: code as number | NodeJS.Signals, stderr: w.stderr() };
}

describe("a signal while the worker's CLI is still loading", () => {
  it("SIGTERM as soon as bin/qworker.js runs: status 0 and one line, not 143", { timeout: 60_000 }, async () => {
    const r = await stopEarly("SIGTERM", 0);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines, r.stderr).toHaveLength(1);
    expect(jsonLogs(r.stderr)[0]).toMatchObject({ levelName: "warning", msg: "SIGTERM received before the worker started: stopping" });
  });

  it("SIGTERM a little later (10, 40, 100 ms), still during start-up: status 0 each time", { timeout: 90_000 }, async () => {
    for (const delay of [10, 40, 100]) {
      const r = await stopEarly("SIGTERM", delay);
      expect(r.code, `after ${delay} ms:\n${r.stderr}`).toBe(0);
      expect(r.stderr.match(/SIGTERM received before the worker started: stopping/g), r.stderr).toHaveLength(1);
      expect(r.stderr).not.toMatch(/qworker: error/);
    }
  });

  it("SIGINT (Ctrl-C) just as early: the same clean stop", { timeout: 60_000 }, async () => {
    const r = await stopEarly("SIGINT", 0);
    expect(r.code, r.stderr).toBe(0);
    expect(jsonLogs(r.stderr).map((l) => l.msg)).toEqual(["SIGINT received before the worker started: stopping"]);
  });

  it("qworker demo, which runs a worker too: Ctrl-C as early is the same clean stop, not 130", { timeout: 60_000 }, async () => {
    const r = await stopEarly("SIGINT", 0, "demo");
    expect(r.code, r.stderr).toBe(0);
    expect(jsonLogs(r.stderr).map((l) => l.msg)).toEqual(["SIGINT received before the worker started: stopping"]);
  });
});
