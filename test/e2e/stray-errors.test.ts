/**
 * A task's error that escapes its own call chain (a throw in a timer it set, a promise it left rejected)
 * must fail that task, or be logged against it if it already finished, and leave the worker and every
 * other running task alone. Before the guard, Node's default ended the async pool's worker process on
 * the first such error: the tasks running beside it were lost to the crash and redelivered, and the worker
 * crashed again on every restart until they had all been dead-lettered.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { jsonLogs, runCli, spawnCli, type CliProcess } from "./helpers.ts";

const TASKS = fileURLToPath(new URL("./stray-tasks", import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-e2e-stray-"));
const broker = `sqlite://${path.join(dir, "broker.db")}`;
const env = { QWORKER_HEALTH_DIR: dir };
let worker: CliProcess | undefined;

afterAll(async () => {
  worker?.signal("SIGKILL");
  await worker?.exited;
  rmSync(dir, { recursive: true, force: true });
});

async function send(task: string, args: unknown[] = []): Promise<string> {
  const r = await runCli(["send", task, "--broker", broker, "--args", JSON.stringify(args)], { env });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

async function result(id: string): Promise<{ state: string; result?: unknown; error?: { message?: string } }> {
  const r = await runCli(["result", id, "--broker", broker, "--wait", "10", "--json"], { env });
  return JSON.parse(r.stdout) as { state: string; result?: unknown; error?: { message?: string } };
}

describe("errors that escape a task in the async pool", () => {
  it("fail that task (or are logged against it) while the worker and the task beside it carry on", async () => {
    worker = spawnCli(["worker", "--broker", broker, "--tasks", TASKS, "--concurrency", "4", "--log-format", "json"], { env });
    await worker.waitForLine(/tasks \(4\)/, 20_000);
    const slow = await send("stray.slow", [1500]);
    const thrower = await send("stray.timer_throw");
    const unhandled = await send("stray.unhandled");
    const late = await send("stray.late");

    expect(await result(thrower)).toMatchObject({ state: "FAILURE", error: { message: "boom from a timer" } });
    expect(await result(unhandled)).toMatchObject({ state: "FAILURE", error: { message: "rejected and never handled" } });
    expect(await result(late)).toMatchObject({ state: "SUCCESS", result: "done first" });
    expect(await result(slow)).toMatchObject({ state: "SUCCESS", result: "slept 1500" });
    await worker.waitForLine(/boom after success \(the task had already finished/, 5000);

    // Still alive and still working.
    expect(await result(await send("stray.slow", [10]))).toMatchObject({ state: "SUCCESS" });
    const errors = jsonLogs(worker.stderr()).filter((l) => l.levelName === "error");
    expect(errors.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^task stray\\.timer_throw\\[${thrower}\\] threw from a callback outside its own call chain: boom from a timer \\(the task fails with it`)),
        expect.stringMatching(new RegExp(`^task stray\\.unhandled\\[${unhandled}\\] left a promise rejection unhandled`)),
      ]),
    );
    worker.signal("SIGTERM");
    expect(await worker.exited).toBe(0);
  }, 60_000);
});

describe("errors that escape a task in the process pool", () => {
  it("fail that task with the task's own error, not as a lost child", async () => {
    const w = spawnCli(["worker", "--broker", broker, "--tasks", TASKS, "--pool", "process", "--concurrency", "2", "--log-format", "json"], { env });
    worker = w;
    await w.waitForLine(/tasks \(4\)/, 30_000);
    const thrower = await send("stray.timer_throw");
    const unhandled = await send("stray.unhandled");
    expect(await result(thrower)).toMatchObject({ state: "FAILURE", error: { message: "boom from a timer" } });
    expect(await result(unhandled)).toMatchObject({ state: "FAILURE", error: { message: "rejected and never handled" } });
    expect(await result(await send("stray.slow", [10]))).toMatchObject({ state: "SUCCESS" });
    expect(w.stderr()).not.toContain("WorkerLostError");
    w.signal("SIGTERM");
    expect(await w.exited).toBe(0);
  }, 60_000);
});
