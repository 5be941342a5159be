/**
 * The CLI on the default embedded broker (sqlite://.qworker/broker.db, relative to the current directory),
 * as a user runs it: commands on tasks already sent, run from a directory with no broker, say so in one
 * line instead of creating an empty one there; `send` creates it and says where.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "./helpers.ts";

const tmp = mkdtempSync(join(tmpdir(), "qworker-e2e-embedded-cli-"));
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
