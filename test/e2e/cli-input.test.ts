/**
 * The real CLI on the embedded SQLite broker (no Redis needed): bad input caught at send time in one line,
 * and output cut short by the reader (`| head`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTransport } from "../../src/broker/factory.ts";
import { buildEnqueueItem } from "../../src/client/build-message.ts";
import { DEFAULT_BROKER_URL } from "../../src/config/schema.ts";
import { runCli, spawnCli, type CliResult } from "./helpers.ts";

let dir: string;
const env = { QWORKER_FROM_SOURCE: "1" };
const cli = (args: string[]) => runCli(args, { cwd: dir, env });

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "qw-cli-input-"));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One line on stderr, prefixed, no stack trace, the expected exit code. */
function expectOneLineError(r: CliResult, code: number, pattern: RegExp): void {
  expect(r.stdout).toBe("");
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(r.code).toBe(code);
}

/** Dead-letter `n` tasks in the embedded broker of `dir`, with long reasons so the listing is large. */
async function seedDead(n: number): Promise<void> {
  const t = await createTransport(DEFAULT_BROKER_URL.replace("sqlite://", `sqlite://${dir}/`));
  try {
    await t.connect();
    await t.enqueue(Array.from({ length: n }, (_, i) => buildEnqueueItem("demo.add", [i, 1], {}, { queue: "default", maxPayloadBytes: 1 << 20 })));
    const leased = await t.reserve({ queues: ["default"], max: n, leaseMs: 60_000, workerId: "seed", waitMs: 0 });
    await t.deadLetter(leased.map((r) => ({ id: r.id, token: r.token, queue: r.queue, reason: `poisoned ${"r".repeat(200)}`, error: "e".repeat(200) })));
  } finally {
    await t.close();
  }
}

describe("output read only in part (`| head -1`)", () => {
  it("dead --json stops quietly when the reader goes away", async () => {
    await seedDead(1000);
    // More than a pipe buffer holds, so the CLI is still writing when the reader closes its end.
    const p = spawnCli(["dead", "--json", "--limit", "1000"], { cwd: dir, env });
    p.proc.stdout!.once("data", () => p.proc.stdout!.destroy());
    const code = await p.exited;
    expect(p.stderr()).toBe("");
    expect(code).toBe(0);
  });
});

describe("QWORKER_LOGLEVEL=debug shows an error's stack, for every command", () => {
  it("send and inspect: the one line, then the stack; the level in any case", async () => {
    for (const [args, level] of [[["send", "demo.add", "--args", "[1,"], "debug"], [["inspect", "scheduled", "--limit", "0"], "DEBUG"]] as const) {
      const r = await runCli([...args], { cwd: dir, env: { ...env, QWORKER_LOGLEVEL: level } });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^qworker: error: /);
      expect(r.stderr).toMatch(/^UsageError: /m);
      expect(r.stderr).toMatch(/^\s+at .+/m);
    }
  });

  it("worker --loglevel INFO is accepted (Celery style)", async () => {
    // Failing on the tasks directory, which is looked for after the config loads, proves the level passed.
    const r = await runCli(["worker", "--loglevel", "INFO", "--tasks", "missing"], { cwd: dir, env });
    expectOneLineError(r, 2, /^qworker: error: tasks directory missing not found/);
  });
});

describe("send: bad input refused at send time, in one line", () => {
  it("an empty or blank task name (also with --celery)", async () => {
    for (const args of [["send", ""], ["send", "   "], ["send", "", "--celery"]]) {
      expectOneLineError(await cli(args), 2, /^qworker: error: task name must not be empty or blank, found "\s*": give the name the task was defined with/);
    }
  });
});

describe("due times: bounded at send time; shown even when out of range", () => {
  it("send --countdown / --eta more than 10 years ahead is refused", async () => {
    for (const args of [["--countdown", "1e20"], ["--countdown", "1e12"]]) {
      expectOneLineError(await cli(["send", "demo.add", ...args]), 2, /^qworker: error: countdown must be at most 315360000 seconds \(10 years\), found \d+: it is in seconds, not milliseconds$/);
    }
    expectOneLineError(await cli(["send", "demo.add", "--eta", "2999-01-01T00:00:00Z"]), 2, /^qworker: error: eta must be at most 10 years from now, found "2999-01-01T00:00:00Z"$/);
    // A number is no date here (Date.parse reads "300" as the year 300, due at once).
    expectOneLineError(await cli(["send", "demo.add", "--eta", "300"]), 2, /^qworker: error: --eta takes a date such as 2030-01-01T12:00:00Z, found 300: for a delay in seconds use --countdown$/);
  });

  it("inspect scheduled and result show a due time no Date can hold (a foreign sender's) as stored", async () => {
    const t = await createTransport(`sqlite://${dir}/far.db`);
    const item = buildEnqueueItem("demo.add", [1, 2], {}, { queue: "default", maxPayloadBytes: 1 << 20 });
    try {
      await t.connect();
      await t.enqueue([{ ...item, dueAt: 1e23 }]);
    } finally {
      await t.close();
    }
    const broker = ["--broker", `sqlite://${dir}/far.db`];
    const scheduled = await cli(["inspect", "scheduled", ...broker]);
    expect(scheduled.stderr).toBe("");
    expect(scheduled.code).toBe(0);
    expect(scheduled.stdout).toContain("1e+23");
    const result = await cli(["result", item.id, ...broker]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^due: +1e\+23 /m);
  });
});

describe("send: options that cannot work together", () => {
  it("--unique-for without --unique-key", async () => {
    expectOneLineError(await cli(["send", "demo.add", "--unique-for", "5"]), 2, /^qworker: error: --unique-for only bounds a unique key: add --unique-key KEY, or drop --unique-for$/);
  });

  it("--soft-time-limit not below --time-limit", async () => {
    expectOneLineError(
      await cli(["send", "demo.add", "--soft-time-limit", "5", "--time-limit", "2"]),
      2,
      /^qworker: error: --soft-time-limit \(5\) must be below --time-limit \(2\): the soft limit warns the task before the hard one stops it$/,
    );
  });
});

describe("messages that name the way out", () => {
  it("--expires that is neither seconds nor a date says both forms are allowed", async () => {
    expectOneLineError(await cli(["send", "demo.add", "--expires", "xyz"]), 2, /^qworker: error: --expires expects seconds from now \(e\.g\. 300\) or a date such as 2030-01-01T12:00:00Z, found "xyz"$/);
    expectOneLineError(await cli(["send", "demo.add", "--expires", "-1"]), 2, /^qworker: error: --expires expects a number >= 0, found "-1"$/);
  });

  it("send's options say which flag is wrong: --eta not a date, --countdown with --eta, a 0 s --time-limit, unique keys with --celery", async () => {
    expectOneLineError(await cli(["send", "demo.add", "--eta", "notadate"]), 2, /^qworker: error: --eta expects a date such as 2030-01-01T12:00:00Z, found "notadate"$/);
    expectOneLineError(await cli(["send", "demo.add", "--countdown", "5", "--eta", "2030-01-01T00:00:00Z"]), 2, /^qworker: error: give either --countdown or --eta, not both$/);
    expectOneLineError(await cli(["send", "demo.add", "--time-limit", "0"]), 2, /^qworker: error: --time-limit expects a number above 0 and at most 2147483, found "0"$/);
    expectOneLineError(await cli(["send", "demo.add", "--queue", ""]), 2, /^qworker: error: queue must be a queue name, found "": leave it unset/);
    expectOneLineError(
      await cli(["send", "tasks.add", "--celery", "--unique-key", "k", "--broker", "redis://127.0.0.1:1/0"]),
      2,
      /^qworker: error: --unique-key is not available with --celery: Celery messages have no unique key \(use --id to name the task instead\)$/,
    );
  });

  it("a task name or id taken by --wait as its seconds is explained, not just reported missing", async () => {
    expectOneLineError(await cli(["send", "--wait", "demo.add"]), 2, /^qworker: error: missing the task name: --wait took "demo\.add" as its seconds; put --wait after the task name/);
    expectOneLineError(await cli(["result", "--wait", "abc-123"]), 2, /^qworker: error: missing the task id: --wait took "abc-123" as its seconds; put --wait after the task id/);
    expectOneLineError(await cli(["send"]), 2, /^qworker: error: missing the task name \(qworker send demo\.add/);
  });

  it("inspect --help names the options its views take (commander listed only -h)", async () => {
    const r = await cli(["inspect", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Every view takes --json, --watch \[seconds\], --broker <url> and --config <path>/);
  });

  it("help with a name that is no command fails as that unknown command does, did-you-mean included", async () => {
    for (const [name, hint] of [["bogus", ""], ["wroker", "(Did you mean worker?)\n"]] as const) {
      const [viaHelp, direct] = await Promise.all([cli(["help", name]), cli([name])]);
      expect(viaHelp.stdout, viaHelp.stderr).toBe("");
      expect(viaHelp.stderr).toBe(`qworker: error: unknown command '${name}'\n${hint}(run with --help for usage)\n`);
      expect(viaHelp.code).toBe(2);
      expect([viaHelp.code, viaHelp.stderr]).toEqual([direct.code, direct.stderr]);
    }
    const [known, helpHelp] = await Promise.all([cli(["help", "worker"]), cli(["help", "help"])]);
    expect([known.code, known.stderr]).toEqual([0, ""]);
    expect(known.stdout).toMatch(/^Usage: qworker worker \[options\]/);
    expect([helpHelp.code, helpHelp.stderr]).toEqual([0, ""]);
    expect(helpHelp.stdout).toMatch(/^Usage: qworker \[options\] \[command\]/);
  });

  it("inspect with an unknown view names the views", async () => {
    expectOneLineError(await cli(["inspect", "bogus"]), 2, /^qworker: error: unknown view "bogus": use one of queues, workers, active, scheduled, dead, stats, events, e\.g\. qworker inspect workers$/);
  });
});
