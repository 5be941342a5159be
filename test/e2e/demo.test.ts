/**
 * `qworker demo` away from the example tasks (another directory, an empty or unrelated tasks/): it has
 * nothing to show, so it fails in one line naming the directory and the way out, instead of reporting
 * "0/0 example tasks succeeded" with exit 0 (or running on as a worker with someone else's tasks). It
 * opens no broker then, so nothing is created in that directory.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, runCli, type CliResult } from "./helpers.ts";

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

const FIX = "\\(the demo runs demo\\.add, shop\\.send_invoice_email, .*\\): run it from the qworker project directory, where npm start runs it, or pass --tasks DIR$";

describe("qworker demo without the example tasks", () => {
  it("no tasks/ directory: says where it looked and what to do", async () => {
    const dir = join(tmp, "no-tasks-dir");
    mkdirSync(dir);
    const r = await runCli(["demo", "--exit"], { cwd: dir, timeoutMs: 30_000 });
    expectOneLineError(r, new RegExp(`^qworker: error: no tasks directory at ${escape(join(dir, "tasks"))} ${FIX}`));
    expect(existsSync(join(dir, ".qworker")), "created .qworker/").toBe(false);
  });

  it("an empty tasks/ directory: fails instead of reporting 0/0 succeeded", async () => {
    const dir = join(tmp, "empty-tasks");
    mkdirSync(join(dir, "tasks"), { recursive: true });
    const r = await runCli(["demo", "--exit"], { cwd: dir, timeoutMs: 30_000 });
    expectOneLineError(r, new RegExp(`^qworker: error: no example tasks found in ${escape(join(dir, "tasks"))} ${FIX}`));
    expect(existsSync(join(dir, ".qworker")), "created .qworker/").toBe(false);
  });

  it("a tasks/ directory with other tasks only: fails, with --exit or without (it does not run on as a worker)", { timeout: 90_000 }, async () => {
    const dir = join(tmp, "other-tasks");
    mkdirSync(join(dir, "tasks"), { recursive: true });
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    writeFileSync(join(dir, "tasks", "mine.ts"), `import { defineTask } from ${JSON.stringify(INDEX)};\nexport const job = defineTask("mine.job", async () => 1);\n`);
    const expected = new RegExp(`^qworker: error: no example tasks found in ${escape(join(dir, "tasks"))} ${FIX}`);
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
