/**
 * The CLI on the default embedded broker (sqlite://.qworker/broker.db, relative to the current directory),
 * as a user runs it: commands on tasks already sent, run from a directory with no broker, say so in one
 * line instead of creating an empty one there; `send` creates it and says where; and `qworker dead` shows
 * a failed task's last error.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ROOT, runCli, spawnCli, waitFor, type CliProcess, type CliResult } from "./helpers.ts";

const INDEX = pathToFileURL(join(ROOT, "src/index.ts")).href;

const tmp = mkdtempSync(join(tmpdir(), "qworker-e2e-embedded-cli-"));
const workers: CliProcess[] = [];
afterEach(async () => {
  for (const w of workers.splice(0)) {
    w.signal("SIGKILL");
    await w.exited;
  }
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A fresh project directory with nothing in it (no config file, so the default broker URL applies). */
function project(name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function expectOneLineError(r: CliResult, code: number, pattern: RegExp): void {
  expect(r.stdout, r.stderr).toBe("");
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.code, r.stderr).toBe(code);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

describe("the default embedded broker, from the wrong directory", () => {
  it("inspect, result, dead, revoke, purge and requeue fail in one line naming the absolute path, and create nothing", { timeout: 90_000 }, async () => {
    const dir = project("nothing-here");
    const db = join(dir, ".qworker", "broker.db");
    const missing = new RegExp(
      `^qworker: error: no embedded broker at ${escape(db)}: run this command in your project's directory .*, or set broker_url / QWORKER_BROKER_URL$`,
    );
    const commands = [
      ["inspect"],
      ["inspect", "workers", "--json"],
      ["inspect", "dead"],
      ["result", "0b1c2d3e-0000-4000-8000-000000000000"],
      ["dead", "--json"],
      ["revoke", "0b1c2d3e-0000-4000-8000-000000000000"],
      ["purge", "default", "--yes"],
      ["requeue", "--all"],
    ];
    const results = await Promise.all(commands.map((args) => runCli(args, { cwd: dir })));
    results.forEach((r, i) => {
      expectOneLineError(r, 3, missing);
      expect(existsSync(join(dir, ".qworker")), `${commands[i]!.join(" ")} created .qworker/`).toBe(false);
    });
  });
});

describe("send on the default embedded broker", () => {
  it("creates it, says which file once, and the commands that only look at it find the task there", async () => {
    const dir = project("first-send");
    const db = join(dir, ".qworker", "broker.db");
    const first = await runCli(["send", "demo.add", "--args", "[1,2]"], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^[0-9a-f-]{36}\n$/);
    expect(first.stderr).toBe(
      `qworker: created a new embedded broker at ${db}; only a worker using this file runs the task (start one in this directory, or set broker_url / QWORKER_BROKER_URL)\n`,
    );
    expect(existsSync(db)).toBe(true);

    const second = await runCli(["send", "demo.add", "--args", "[3,4]"], { cwd: dir });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toBe("");

    const inspected = await runCli(["inspect", "--json"], { cwd: dir });
    expect(inspected.code, inspected.stderr).toBe(0);
    expect((JSON.parse(inspected.stdout) as { queues: unknown[] }).queues).toContainEqual({ name: "default", ready: 2, delayed: 0, active: 0, dead: 0 });
  });
});

describe("qworker dead on the embedded broker", () => {
  it("shows the last error of a task that failed for good, in the table and with --json", { timeout: 60_000 }, async () => {
    const dir = project("dead-error");
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    mkdirSync(join(dir, "tasks"));
    writeFileSync(
      join(dir, "tasks", "boom.ts"),
      `import { defineTask } from ${JSON.stringify(INDEX)};
export const boom = defineTask({ name: "e2e.boom", retry: false }, (n: number) => {
  throw new TypeError("bad input " + n);
});
`,
    );
    const worker = spawnCli(["worker", "--tasks", join(dir, "tasks"), "--log-format", "json"], { cwd: dir, env: { QWORKER_FROM_SOURCE: "1" } });
    workers.push(worker);
    await worker.waitForLine(/tasks \(1\): e2e\.boom/, 20_000);
    const sent = await runCli(["send", "e2e.boom", "--args", "[42]"], { cwd: dir });
    expect(sent.code, sent.stderr).toBe(0);
    const id = sent.stdout.trim();

    const line = await waitFor(
      "the task in the dead-letter set",
      async () => {
        const r = await runCli(["dead", "--json"], { cwd: dir });
        return r.stdout.split("\n").find((l) => l.includes(id));
      },
      20_000,
      200,
    );
    const row = JSON.parse(line) as Record<string, unknown>;
    expect(row).toMatchObject({ id, task: "e2e.boom", reason: "failed: bad input 42", error: "TypeError: bad input 42" });
    // Every --json time is epoch ms, and `dead --json` prints the rows of `inspect dead --json`, one a line.
    expect(row.deadAt).toEqual(expect.any(Number));
    expect(Math.abs((row.deadAt as number) - Date.now())).toBeLessThan(60_000);
    const inspected = await runCli(["inspect", "dead", "--json"], { cwd: dir });
    expect(inspected.code, inspected.stderr).toBe(0);
    expect((JSON.parse(inspected.stdout) as { dead: unknown[] }).dead).toEqual([row]);
    const table = await runCli(["dead"], { cwd: dir });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain("TypeError: bad input 42");
  });
});
