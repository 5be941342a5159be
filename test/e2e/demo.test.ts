/**
 * `qworker demo` away from the repository's example tasks. Where ./tasks has no task of its own (a new
 * project after `npm i qworker`: no tasks/ at all, or an empty one) it runs the examples shipped in the
 * package and says so in one line. A tasks/ holding other tasks, or a directory asked for with --tasks that
 * has no examples, is not swapped for them: that fails in one line naming the directory and the way out,
 * instead of reporting "0/0 example tasks succeeded" with exit 0 (or running on as a worker with someone
 * else's tasks), and opens no broker, so nothing is created in that directory.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { jsonLogs, ROOT, runCli, spawnCli, type CliProcess, type CliResult } from "./helpers.ts";

const INDEX = pathToFileURL(join(ROOT, "src/index.ts")).href;
const tmp = mkdtempSync(join(tmpdir(), "qworker-e2e-demo-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

function expectOneLineError(r: CliResult, pattern: RegExp): void {
  const why = `exit ${String(r.code)} after ${r.ms} ms\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  expect(r.stdout, why).toBe("");
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, why).toHaveLength(1);
  expect(lines[0], why).toMatch(pattern);
  expect(r.code, why).toBe(2);
}

const EXAMPLES = "\\(the demo runs demo\\.add, shop\\.send_invoice_email, .*\\)";
const FIX_DEFAULT = `${EXAMPLES}: pass --tasks DIR with the examples \\(the ones shipped with qworker stand in only for a tasks/ with no tasks of its own\\)$`;
const FIX_EXPLICIT = `${EXAMPLES}: point --tasks \\(or tasks_dir\\) at a directory with the examples, or leave it unset to use the ones shipped with qworker$`;

/** A demo run to the end on the examples shipped in the package, in `dir` (whose ./tasks has none of its own). */
async function expectShippedExamples(dir: string): Promise<void> {
  const r = await runCli(["demo", "--exit"], { cwd: dir, env: { QWORKER_DEMO_FAIL_RATE: "0" }, timeoutMs: 60_000 });
  const why = `exit ${String(r.code)} after ${r.ms} ms\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-3000)}`;
  expect(r.code, why).toBe(0);
  const said = jsonLogs(r.stderr).filter((l) => l.msg?.includes("example tasks shipped"));
  expect(said.map((l) => l.msg), why).toEqual([`demo: no tasks in ${join(dir, "tasks")}: using the example tasks shipped with qworker (${join(ROOT, "tasks")})`]);
  expect(r.stdout, why).toContain("demo.add(2, 3) -> 5\n");
  expect(r.stdout, why).toContain("5/5 example tasks succeeded");
  expect(r.stderr, why).toMatch(/task shop\.send_invoice_email\[[0-9a-f-]{36}\] succeeded/);
}

describe("qworker demo without the example tasks", () => {
  it("no tasks/ directory (a new project after npm i qworker): runs the examples shipped with qworker", { timeout: 90_000 }, async () => {
    const dir = join(tmp, "no-tasks-dir");
    mkdirSync(dir);
    await expectShippedExamples(dir);
  });

  it("an empty tasks/ directory: the shipped examples too, instead of failing or reporting 0/0 succeeded", { timeout: 90_000 }, async () => {
    const dir = join(tmp, "empty-tasks");
    mkdirSync(join(dir, "tasks"), { recursive: true });
    await expectShippedExamples(dir);
  });

  it("from an installed package (npm pack, unpacked into node_modules/qworker): its examples load from there", { timeout: 120_000 }, async () => {
    const project = join(tmp, "installed");
    const pkg = join(project, "node_modules", "qworker");
    mkdirSync(pkg, { recursive: true });
    const pack = spawnSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp], { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
    expect(pack.status, pack.stderr).toBe(0);
    const tarball = join(tmp, (JSON.parse(pack.stdout) as { filename: string }[])[0]!.filename);
    const untar = spawnSync("tar", ["xzf", tarball, "-C", pkg, "--strip-components=1"], { encoding: "utf8" });
    expect(untar.status, untar.stderr).toBe(0);
    // The dependencies an install would put beside it; the package's own files are the packed ones.
    symlinkSync(join(ROOT, "node_modules"), join(pkg, "node_modules"));
    const r = await runCli(["demo", "--exit"], { bin: join(pkg, "bin", "qworker.js"), cwd: project, env: { QWORKER_DEMO_FAIL_RATE: "0", QWORKER_FROM_SOURCE: "1" }, timeoutMs: 90_000 });
    const why = `exit ${String(r.code)}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr.slice(-3000)}`;
    expect(r.code, why).toBe(0);
    expect(r.stderr, why).toContain(`using the example tasks shipped with qworker (${join(pkg, "tasks")})`);
    expect(r.stdout, why).toContain("5/5 example tasks succeeded");
  });

  it("--tasks DIR (or tasks_dir) without the examples fails: what was asked for is not swapped", { timeout: 60_000 }, async () => {
    const dir = join(tmp, "explicit-empty");
    mkdirSync(join(dir, "none"), { recursive: true });
    const [empty, missing, fromEnv] = await Promise.all([
      runCli(["demo", "--exit", "--tasks", "none"], { cwd: dir, timeoutMs: 30_000 }),
      runCli(["demo", "--exit", "--tasks", "nowhere"], { cwd: dir, timeoutMs: 30_000 }),
      runCli(["demo", "--exit"], { cwd: dir, env: { QWORKER_TASKS_DIR: "none" }, timeoutMs: 30_000 }),
    ]);
    expectOneLineError(empty, new RegExp(`^qworker: error: no example tasks found in ${escape(join(dir, "none"))} ${FIX_EXPLICIT}`));
    expectOneLineError(missing, new RegExp(`^qworker: error: no tasks directory at ${escape(join(dir, "nowhere"))} ${FIX_EXPLICIT}`));
    expectOneLineError(fromEnv, new RegExp(`^qworker: error: no example tasks found in ${escape(join(dir, "none"))} ${FIX_EXPLICIT}`));
    expect(existsSync(join(dir, ".qworker")), "created .qworker/").toBe(false);
  });

  it("a tasks/ directory with other tasks only: fails, with --exit or without (it does not run on as a worker)", { timeout: 90_000 }, async () => {
    const dir = join(tmp, "other-tasks");
    mkdirSync(join(dir, "tasks"), { recursive: true });
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    writeFileSync(join(dir, "tasks", "mine.ts"), `import { defineTask } from ${JSON.stringify(INDEX)};\nexport const job = defineTask("mine.job", async () => 1);\n`);
    const expected = new RegExp(`^qworker: error: no example tasks found in ${escape(join(dir, "tasks"))} ${FIX_DEFAULT}`);
    const [withExit, without] = await Promise.all([runCli(["demo", "--exit"], { cwd: dir, timeoutMs: 30_000 }), runCli(["demo"], { cwd: dir, timeoutMs: 30_000 })]);
    expectOneLineError(withExit, expected);
    expectOneLineError(without, expected);
    expect(existsSync(join(dir, ".qworker")), "created .qworker/").toBe(false);
  });

  it("--tasks DIR points it at the examples from anywhere", { timeout: 90_000 }, async () => {
    const dir = join(tmp, "elsewhere");
    mkdirSync(dir);
    const db = join(dir, "b.db");
    const r = await runCli(["demo", "--exit", "--tasks", join(ROOT, "tasks"), "--broker", `sqlite://${db}`], {
      cwd: dir,
      env: { QWORKER_DEMO_FAIL_RATE: "0" },
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stdout).toContain("demo.add(2, 3) -> 5\n");
    expect(r.stdout).toContain("5/5 example tasks succeeded");
  });
});

/**
 * Ctrl-C while the demo starts (tasks loading, the examples still running): a clean stop with status 0, as
 * the worker's, not death by SIGINT (130), which left its tasks leased until their heartbeat lapsed. Its
 * handlers went in only once the example results were in.
 */
describe("qworker demo stopped while it starts", () => {
  /** A project whose demo.add is `body` (a module that can hold up loading or running). */
  function project(name: string, module: string): string {
    const dir = join(tmp, name);
    mkdirSync(join(dir, "tasks"), { recursive: true });
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    writeFileSync(join(dir, "tasks", "demo.ts"), `import { defineTask } from ${JSON.stringify(INDEX)};\n${module}`);
    return dir;
  }

  async function exitOf(p: CliProcess): Promise<number | NodeJS.Signals | string> {
    const code = await Promise.race([p.exited, new Promise<string>((r) => setTimeout(() => r("still running 15 s after the signal"), 15_000))]);
    if (typeof code === "string") p.signal("SIGKILL");
    return code;
  }

  it("Ctrl-C while the task modules load: status 0 and one line, nothing created", { timeout: 60_000 }, async () => {
    const dir = project(
      "stop-loading",
      `process.stderr.write("test: tasks loading\\n");\nawait new Promise((r) => setTimeout(r, 60_000));\nexport const add = defineTask("demo.add", (x: number, y: number) => x + y);\n`,
    );
    const p = spawnCli(["demo"], { cwd: dir });
    await p.waitForLine(/^test: tasks loading$/, 30_000);
    p.signal("SIGINT");
    const code = await exitOf(p);
    expect(code, p.stderr()).toBe(0);
    expect(jsonLogs(p.stderr()).map((l) => l.msg)).toEqual(["SIGINT received before the worker started: stopping"]);
    expect(p.stdout()).toBe("");
    expect(existsSync(join(dir, ".qworker")), "created .qworker/").toBe(false);
  });

  it("Ctrl-C while the examples run: a warm shutdown (the running task handed back after shutdown_timeout), status 0", { timeout: 60_000 }, async () => {
    const dir = project("stop-running", `export const add = defineTask("demo.add", async (x: number, y: number) => {\n  await new Promise((r) => setTimeout(r, 60_000));\n  return x + y;\n});\n`);
    const p = spawnCli(["demo"], { cwd: dir, env: { QWORKER_SHUTDOWN_TIMEOUT: "1" } });
    await p.waitForLine(/task demo\.add\[[0-9a-f-]{36}\] received/, 30_000);
    p.signal("SIGINT");
    const code = await exitOf(p);
    expect(code, p.stderr()).toBe(0);
    const msgs = jsonLogs(p.stderr()).map((l) => l.msg ?? "");
    expect(msgs.filter((m) => m.startsWith("SIGINT received"))).toEqual(["SIGINT received: warm shutdown (finishing running tasks, up to 1 s; send again to stop now)"]);
    expect(msgs.at(-1)).toBe("worker stopped");
    expect(p.stdout()).not.toContain("example tasks succeeded");
  });
});
