import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import { freePort, rawCommand, startLoadingRedisServer, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { jsonLogs, ROOT, runCli, spawnCli, type CliProcess, type CliResult } from "./helpers.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let redis: RedisServerHandle;
let tmp: string;
const workers: CliProcess[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
  tmp = mkdtempSync(join(tmpdir(), "qworker-e2e-"));
});
afterEach(() => {
  for (const w of workers.splice(0)) w.signal("SIGKILL");
});
afterAll(async () => {
  await redis?.cleanup();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("a new user's first session: worker, send, inspect, stop", () => {
  // Lines are matched in their raw JSON form (the worker's stderr is not a TTY, so it logs JSON lines).
  it("runs the invoice task sent from another shell, reports it, and stops cleanly on SIGTERM", async () => {
    // The repository as the user cloned it: its tasks/ and config/qworker.yaml, Redis by environment.
    const env = { QWORKER_BROKER_URL: redis.url, QWORKER_REDIS_PREFIX: "e2e1:", QWORKER_HEALTH_DIR: tmp };
    const worker = spawnCli(["worker", "--loglevel=info"], { cwd: ROOT, env });
    workers.push(worker);
    await worker.waitForLine(/tasks \(\d+\): .*shop\.send_invoice_email/, 20_000);
    expect(worker.stderr()).toContain(`broker: ${redis.url}`);

    const sent = await runCli(["send", "shop.send_invoice_email", "--args", "[1234]"], { cwd: ROOT, env });
    expect(sent.stderr).toBe("");
    expect(sent.code).toBe(0);
    expect(sent.stdout).toMatch(/^[0-9a-f-]{36}\n$/);
    const id = sent.stdout.trim();
    expect(id).toMatch(UUID);
    const line = await worker.waitForLine(new RegExp(`shop\\.send_invoice_email\\[${id}\\] succeeded in [\\d.]+ ms: \\{\\\\"orderId\\\\":1234,`), 5000);
    expect(jsonLogs(line)[0]?.levelName).toBe("info");
    // "Within a second" is measured from the message's creation in `send` to the worker's success line, so
    // the CLI's own start-up time (tsx compiling src/ on a busy machine) does not count.
    const sentAt = await sentTime(id, env.QWORKER_REDIS_PREFIX);
    expect((JSON.parse(line) as { time: number }).time - sentAt).toBeLessThan(1000);

    // The countdown example from the README: not run before 2 s, then once.
    const before = Date.now();
    const delayed = await runCli(["send", "demo.add", "--args", "[2,3]", "--countdown", "2"], { cwd: ROOT, env });
    expect(delayed.code).toBe(0);
    const delayedId = delayed.stdout.trim();
    const ok = await worker.waitForLine(new RegExp(`demo\\.add\\[${delayedId}\\] succeeded in .*: 5"`), 8000).catch(() => "");
    const done = jsonLogs(worker.stderr()).filter((l) => l.msg?.includes(`demo.add[${delayedId}] succeeded`));
    expect(ok).not.toBe("");
    expect(done).toHaveLength(1);
    const ranAt = (JSON.parse(ok) as { time: number }).time;
    expect(ranAt - before).toBeGreaterThanOrEqual(2000);

    type Report = {
      queues: { name: string; ready: number; delayed: number; active: number; dead: number }[];
      workers: { id: string; pid: number; concurrency: number; processed: number; host: string; startedAt: number }[];
    };
    // Worker counts travel with the heartbeat (every heartbeat_interval, 2 s), so ask until the latest
    // beat carries both tasks, for at most a few beats.
    let report: Report | undefined;
    for (let i = 0; i < 12; i++) {
      const inspected = await runCli(["inspect", "--json"], { cwd: ROOT, env });
      expect(inspected.code).toBe(0);
      report = JSON.parse(inspected.stdout) as Report;
      if (report.workers.find((w) => w.pid === worker.pid)?.processed === 2) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(report!.queues).toContainEqual({ name: "default", ready: 0, delayed: 0, active: 0, dead: 0 });
    const me = report!.workers.find((w) => w.pid === worker.pid);
    expect(me).toMatchObject({ concurrency: 10, processed: 2 });

    const table = await runCli(["inspect"], { cwd: ROOT, env });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/queue.*ready.*delayed.*active.*dead/);
    expect(table.stdout).toContain(me!.id);

    worker.signal("SIGTERM");
    expect(await worker.exited).toBe(0);
    expect(worker.stderr()).toContain("worker stopped");
    expect(worker.stdout()).toBe("");
  }, 90_000);
});

/** When the client built the message, read from the stored result (sentAt). */
async function sentTime(id: string, prefix: string): Promise<number> {
  const transport = createRedisTransport(redis.url, { prefix, failFast: true });
  await transport.connect();
  try {
    const raw = await transport.waitForResult(id, 5000);
    const sentAt = raw === null ? undefined : (JSON.parse(raw) as { sentAt?: number }).sentAt;
    if (sentAt === undefined) throw new Error(`no result with sentAt stored for ${id}`);
    return sentAt;
  } finally {
    await transport.close();
  }
}

/**
 * A worker whose broker cannot be reached: one warning line per attempt with a growing delay, and it is
 * still running after them.
 */
async function expectRetries(worker: CliProcess, line: RegExp): Promise<void> {
  await worker.waitForLine(/trying again in 2 s/, 20_000);
  const warnings = jsonLogs(worker.stderr()).filter((l) => l.levelName === "warning");
  const delays = warnings.map((l) => line.exec(l.msg ?? "")?.[1]);
  expect(delays, worker.stderr()).toEqual(["1", "2"]);
  expect(worker.stderr()).not.toMatch(/qworker: error/);
}

/** SIGTERM stops a worker that waits for its broker at once, with status 0. */
async function expectPromptStop(worker: CliProcess): Promise<void> {
  const at = Date.now();
  worker.signal("SIGTERM");
  expect(await worker.exited).toBe(0);
  expect(Date.now() - at).toBeLessThan(2000);
  expect(worker.stderr()).toMatch(/SIGTERM received before the worker started: stopping/);
  expect(worker.stderr()).toContain("worker stopped");
}

/** One line on stderr, prefixed, no stack trace, the expected exit code. */
function expectOneLineError(r: CliResult, code: number, pattern: RegExp): void {
  expect(r.stdout).toBe("");
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0], `exit ${String(r.code)} after ${r.ms} ms`).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.code).toBe(code);
}

describe("bad input: one line on stderr, the right exit code, no stack trace, quickly", () => {
  it("bad YAML in config/qworker.yaml (worker and send)", async () => {
    const dir = join(tmp, "bad-yaml");
    mkdirSync(join(dir, "config"), { recursive: true });
    writeFileSync(join(dir, "config", "qworker.yaml"), "broker_url: redis://127.0.0.1:6379\nqueues: [a, b\n");
    const worker = await runCli(["worker"], { cwd: dir });
    expectOneLineError(worker, 2, /^qworker: error: config\/qworker\.yaml: invalid YAML at line \d+, column \d+: /);
    const send = await runCli(["send", "demo.add", "--args", "[1,2]"], { cwd: dir });
    expectOneLineError(send, 2, /invalid YAML at line/);
  });

  it("an unknown config key suggests the right one", async () => {
    const dir = join(tmp, "unknown-key");
    mkdirSync(join(dir, "config"), { recursive: true });
    writeFileSync(join(dir, "config", "qworker.yaml"), "concurency: 4\n");
    expectOneLineError(await runCli(["worker"], { cwd: dir }), 2, /unknown key "concurency" \(did you mean "concurrency"\?\)$/);
  });

  it("malformed --args", async () => {
    const r = await runCli(["send", "demo.add", "--args", "[1,", "--broker", redis.url], { cwd: tmp });
    expectOneLineError(r, 2, /^qworker: error: --args is not valid JSON .*example: --args/);
  });

  it("a queue key of the wrong type (another program writing under the prefix): send fails in one line, exit 3", async () => {
    await rawCommand(redis.port, ["RPUSH", "wrongtype:q:other:ready", "x"]);
    const r = await runCli(["send", "demo.add", "--queue", "other", "--broker", redis.url], { cwd: tmp, env: { QWORKER_REDIS_PREFIX: "wrongtype:" } });
    // enqueue.lua checks the queue's keys before it stores anything, so the line names the key and the way out.
    expectOneLineError(r, 3, /^qworker: error: Redis at \S+: wrongtype:q:other:ready holds a list, not the sorted set of the queue's ready tasks: a running worker sets it aside .*then send again$/);
    expect(await rawCommand(redis.port, ["KEYS", "wrongtype:j:*"])).toBe("*0");
  });

  it("a sequence counter that is not an integer: send fails in one line naming the key and the fix, exit 3, and stores nothing", async () => {
    await rawCommand(redis.port, ["SET", "badseq:seq", "abc"]);
    const r = await runCli(["send", "demo.add", "--id", "seq-1", "--broker", redis.url], { cwd: tmp, env: { QWORKER_REDIS_PREFIX: "badseq:" } });
    expectOneLineError(r, 3, /^qworker: error: Redis at \S+: badseq:seq holds the string "abc", not the integer counter .*a running worker sets it aside .*start one if none runs/);
    expect(await rawCommand(redis.port, ["EXISTS", "badseq:j:seq-1"])).toBe(":0");
  });

  it("an unknown option", async () => {
    expectOneLineError(await runCli(["send", "demo.add", "--bogus"], { cwd: tmp }), 2, /^qworker: error: unknown option '--bogus'$/);
  });

  it("a broker URL that cannot be read (a bad port, a db that is not a number): exit 2 naming the flag, variable or YAML file", async () => {
    const bad = "redis://127.0.0.1:notaport/0";
    const dir = join(tmp, "bad-broker-url");
    mkdirSync(join(dir, "config"), { recursive: true });
    writeFileSync(join(dir, "config", "qworker.yaml"), `broker_url: ${bad}\n`);
    const unreadable = /invalid Redis URL redis:\/\/127\.0\.0\.1:notaport\/0: port "notaport" is not a number: expected redis:\/\//;
    expectOneLineError(await runCli(["send", "demo.add", "--broker", bad], { cwd: tmp }), 2, new RegExp(`^qworker: error: option --broker: key "broker_url": ${unreadable.source}`));
    expectOneLineError(
      await runCli(["send", "demo.add"], { cwd: tmp, env: { QWORKER_BROKER_URL: bad } }),
      2,
      new RegExp(`^qworker: error: environment variable QWORKER_BROKER_URL: key "broker_url": ${unreadable.source}`),
    );
    expectOneLineError(await runCli(["worker"], { cwd: dir }), 2, new RegExp(`^qworker: error: config/qworker\\.yaml: key "broker_url": ${unreadable.source}`));
    for (const args of [["send", "demo.add"], ["worker", "--tasks", join(ROOT, "tasks")]]) {
      for (const db of ["abc", "-1"]) {
        expectOneLineError(
          await runCli([...args, "--broker", `${redis.url}/${db}`], { cwd: tmp }),
          2,
          new RegExp(`^qworker: error: option --broker: key "broker_url": Redis URL redis://127\\.0\\.0\\.1:\\d+/${db}: database "${db}" is not a number from 0 up`),
        );
      }
    }
  });

  it("a db the Redis does not have: send and worker fail their first connect in one line (exit 3), and nothing lands in db 0", async () => {
    const env = { QWORKER_REDIS_PREFIX: "e2e-nodb:" };
    for (const [args, db] of [[["send", "demo.add", "--args", "[1,2]"], 16], [["worker", "--tasks", join(ROOT, "tasks")], 99]] as const) {
      expectOneLineError(
        await runCli([...args, "--broker", `${redis.url}/${db}`], { cwd: tmp, env, timeoutMs: 20_000 }),
        3,
        new RegExp(`^qworker: error: Redis at redis://127\\.0\\.0\\.1:\\d+/${db} has no database ${db} \\(ERR DB index is out of range\\): use a database number below its "databases" setting`),
      );
    }
    expect(await rawCommand(redis.port, ["KEYS", "e2e-nodb:*"])).toBe("*0");
  });

  it("an unreachable broker: send and inspect fail at once; the worker says so, retries, and stops on SIGTERM with 0", async () => {
    const closed = `redis://127.0.0.1:${await freePort()}`;
    // A command that fails before touching the broker gives the CLI's start-up time on this machine, so the
    // bound below is on the broker attempt alone, not on how busy the machine is.
    const baseline = await runCli(["send", "demo.add", "--args", "[1,"], { cwd: tmp });
    for (const args of [["send", "demo.add", "--args", "[1,2]"], ["inspect", "--json"]]) {
      const r = await runCli([...args, "--broker", closed], { cwd: tmp, timeoutMs: 20_000 });
      expectOneLineError(r, 3, /^qworker: error: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\): start redis-server/);
      expect(r.ms - baseline.ms, args[0]).toBeLessThan(4000);
    }
    // A worker may be started before its Redis (at boot, or while Redis restarts): it waits for it.
    const worker = spawnCli(["worker", "--tasks", join(ROOT, "tasks"), "--broker", closed.replace("//", "//:s3cret@")], { cwd: tmp });
    workers.push(worker);
    await expectRetries(worker, /^cannot reach Redis at redis:\/\/:\*\*\*\*@127\.0\.0\.1:\d+\/? \(ECONNREFUSED\): trying again in (\d+) s$/);
    expect(worker.stderr()).not.toContain("s3cret");
    await expectPromptStop(worker);
  }, 60_000);

  it("a worker without broker_connection_retry_on_startup fails at once like the CLI", async () => {
    const closed = `redis://127.0.0.1:${await freePort()}`;
    const r = await runCli(["worker", "--tasks", join(ROOT, "tasks"), "--broker", closed], {
      cwd: tmp,
      env: { QWORKER_BROKER_CONNECTION_RETRY_ON_STARTUP: "false" },
      timeoutMs: 20_000,
    });
    expectOneLineError(r, 3, /^qworker: error: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\): start redis-server/);
  });

  it("a Redis that accepts connections but never answers (stopped): send and inspect fail in one line instead of hanging; the worker retries", async () => {
    // SIGSTOP leaves the listening socket to the kernel, which still completes TCP handshakes: the client
    // connects, then waits for replies that never come. ioredis's connectTimeout does not cover that part.
    const stopped = await startRedisServer();
    process.kill(stopped.pid!, "SIGSTOP");
    try {
      const baseline = await runCli(["send", "demo.add", "--args", "[1,"], { cwd: tmp });
      for (const args of [["send", "demo.add", "--args", "[1,2]"], ["inspect", "--json"]]) {
        const r = await runCli([...args, "--broker", stopped.url], { cwd: tmp, timeoutMs: 20_000 });
        expectOneLineError(r, 3, /^qworker: error: Redis at redis:\/\/127\.0\.0\.1:\d+ accepted the connection but did not answer within 3\.0 s: check that a running, responsive Redis listens there/);
        expect(r.ms - baseline.ms, args[0]).toBeLessThan(8000);
      }
      const worker = spawnCli(["worker", "--tasks", join(ROOT, "tasks"), "--broker", stopped.url], { cwd: tmp });
      workers.push(worker);
      await worker.waitForLine(/Redis at redis:\/\/127\.0\.0\.1:\d+ accepted the connection but did not answer within 3\.0 s: trying again in 1 s/, 20_000);
      await expectPromptStop(worker);
    } finally {
      process.kill(stopped.pid!, "SIGCONT");
      await stopped.cleanup();
    }
  }, 90_000);

  it("a Redis that stops answering after the CLI connected: send fails after command_timeout in one line", async () => {
    // CLIENT PAUSE WRITE lets the connection's handshake through and holds every script: a Redis that goes
    // silent in the middle of a command, as seen by the client.
    const paused = await startRedisServer();
    try {
      await rawCommand(paused.port, ["CLIENT", "PAUSE", "20000", "WRITE"]);
      const r = await runCli(["send", "demo.add", "--args", "[1,2]", "--broker", paused.url], {
        cwd: tmp,
        env: { QWORKER_COMMAND_TIMEOUT: "1" },
        timeoutMs: 15_000,
      });
      expectOneLineError(r, 3, /^qworker: error: Redis at redis:\/\/127\.0\.0\.1:\d+ did not answer within 1\.0 s .*raise command_timeout; what was asked may still happen/);
    } finally {
      await rawCommand(paused.port, ["CLIENT", "UNPAUSE"]).catch(() => {});
      await paused.cleanup();
    }
  }, 30_000);

  it("a worker started before its Redis (a reboot) waits for it, then runs tasks", async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const env = { QWORKER_REDIS_PREFIX: "e2e-late:" };
    const worker = spawnCli(["worker", "--broker", url, "--tasks", join(ROOT, "tasks")], { cwd: tmp, env });
    workers.push(worker);
    await expectRetries(worker, /^cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+\/? \(ECONNREFUSED\): trying again in (\d+) s$/);
    const late = await startRedisServer({ port });
    try {
      await worker.waitForLine(/tasks \(\d+\): /, 20_000);
      const sent = await runCli(["send", "demo.add", "--args", "[2,5]", "--broker", url], { cwd: tmp, env });
      expect(sent.code, sent.stderr).toBe(0);
      await worker.waitForLine(new RegExp(`demo\\.add\\[${sent.stdout.trim()}\\] succeeded`), 10_000);
      worker.signal("SIGTERM");
      expect(await worker.exited).toBe(0);
    } finally {
      await late.cleanup();
    }
  }, 60_000);

  it("a Redis still loading its data set: send says so in one line; a worker says it waits, then runs tasks", async () => {
    // 5,000 keys at 2 ms: about 10 s of loading, time enough for both to start on a loaded machine.
    const loading = await startLoadingRedisServer({ keys: 5000 });
    const worker = spawnCli(["worker", "--broker", loading.url, "--tasks", join(ROOT, "tasks")], { cwd: tmp });
    try {
      expectOneLineError(
        await runCli(["send", "demo.add", "--args", "[1,2]", "--broker", loading.url], { cwd: tmp, timeoutMs: 15_000 }),
        3,
        /^qworker: error: Redis at redis:\/\/127\.0\.0\.1:\d+\/? is still loading its data set after a restart \(about \d+ s left, by its own estimate\): try again once it has loaded \(a worker waits for it\)$/,
      );
      await worker.waitForLine(/waiting for the broker's Redis to load its data set/, 15_000);
      await worker.waitForLine(/tasks \(\d+\): /, 20_000);
      const sent = await runCli(["send", "demo.add", "--args", "[1,2]", "--broker", loading.url], { cwd: tmp });
      expect(sent.code).toBe(0);
      await worker.waitForLine(new RegExp(`demo\\.add\\[${sent.stdout.trim()}\\] succeeded`), 10_000);
    } finally {
      worker.signal("SIGKILL");
      await worker.exited;
      await loading.cleanup();
    }
  }, 60_000);

  it("Sentinel and Cluster URLs: unreachable ones fail at once, malformed ones at config load, each in one line", async () => {
    const port = await freePort();
    expectOneLineError(
      await runCli(["send", "demo.add", "--args", "[1,2]", "--broker", `redis+sentinel://127.0.0.1:${port}/mymaster`], { cwd: tmp, timeoutMs: 20_000 }),
      3,
      /^qworker: error: cannot reach the Redis master through the sentinels of redis\+sentinel:\/\/127\.0\.0\.1:\d+\/mymaster \(no sentinel answered\): check that the sentinels run/,
    );
    expectOneLineError(
      await runCli(["send", "demo.add", "--args", "[1,2]", "--broker", `redis+cluster://127.0.0.1:${port}`], { cwd: tmp, timeoutMs: 20_000 }),
      3,
      /^qworker: error: cannot reach the Redis Cluster at redis\+cluster:\/\/127\.0\.0\.1:\d+ .*CLUSTER INFO/,
    );
    expectOneLineError(await runCli(["send", "demo.add", "--broker", `redis+sentinel://127.0.0.1:${port}`], { cwd: tmp }), 2, /names no master: expected redis\+sentinel:\/\//);
    expectOneLineError(await runCli(["send", "demo.add", "--broker", "sentinel://127.0.0.1:26379"], { cwd: tmp }), 2, /kombu's sentinel:\/\/ form is not read/);
  });

  it("a task module that throws, or a duplicate task name: the worker does not start", async () => {
    const fixtures = join(ROOT, "test", "fixtures");
    const env = { QWORKER_BROKER_URL: redis.url };
    expectOneLineError(await runCli(["worker", "--tasks", join(fixtures, "tasks-throws")], { cwd: tmp, env }), 2, /cannot load task module .*broken\.ts: SMTP host is not configured$/);
    expectOneLineError(await runCli(["worker", "--tasks", join(fixtures, "tasks-dup")], { cwd: tmp, env }), 2, /task "dup\.same" is defined twice: in .*a\.ts and in .*b\.ts; rename one$/);
  });

  it("a syntax error in a TypeScript task module names the error and its place; a project not marked as ES modules gets the fix", async () => {
    const env = { QWORKER_BROKER_URL: redis.url };
    const esm = join(tmp, "syntax-esm");
    mkdirSync(join(esm, "tasks"), { recursive: true });
    writeFileSync(join(esm, "package.json"), '{"type":"module"}');
    writeFileSync(join(esm, "tasks", "bad.ts"), "export const x = 1;\nexport const y = (2;\n");
    // Generous deadlines: tsx compiles the task module (and, for the CommonJS project, qworker's sources it
    // imports) on a machine that may be running the rest of the suite.
    expectOneLineError(await runCli(["worker"], { cwd: esm, env, timeoutMs: 40_000 }), 2, /^qworker: error: cannot load task module tasks\/bad\.ts: Expected "\)" but found ";" \(line 2, column 19\)$/);

    const cjs = join(tmp, "not-esm");
    mkdirSync(join(cjs, "tasks"), { recursive: true });
    writeFileSync(join(cjs, "package.json"), "{}");
    writeFileSync(join(cjs, "tasks", "t.ts"), `import { defineTask } from ${JSON.stringify(join(ROOT, "src", "index.ts"))};\nexport const t = defineTask("cjs.t", () => 1);\n`);
    expectOneLineError(await runCli(["worker"], { cwd: cjs, env, timeoutMs: 40_000 }), 2, /cannot load task module tasks\/t\.ts: task modules are ES modules, and this project is not marked as one: add "type": "module" to its package\.json/);
  }, 120_000);

  it("a syntax error in a JavaScript task module (.js, .mjs) names the error and its line and column", async () => {
    const env = { QWORKER_BROKER_URL: redis.url };
    const js = join(tmp, "syntax-js");
    mkdirSync(join(js, "td"), { recursive: true });
    writeFileSync(join(js, "package.json"), '{"type":"module"}');
    writeFileSync(join(js, "td", "a.js"), "export const a = 1;\nconst = 2;\n");
    expectOneLineError(await runCli(["worker", "--tasks", "td"], { cwd: js, env, timeoutMs: 40_000 }), 2, /^qworker: error: cannot load task module td\/a\.js: Unexpected token '=' \(line 2, column 6\)$/);

    // With an import in it, tsx's import scanner reads the module before Node does (and put the error at 1:1).
    const mjs = join(tmp, "syntax-mjs");
    mkdirSync(join(mjs, "td"), { recursive: true });
    writeFileSync(join(mjs, "td", "a.mjs"), 'import { EOL } from "node:os";\nexport const a = EOL;\n\n\nconst b = (1;\n');
    expectOneLineError(await runCli(["worker", "--tasks", "td"], { cwd: mjs, env, timeoutMs: 40_000 }), 2, /^qworker: error: cannot load task module td\/a\.mjs: Unexpected token ';' \(line 5, column 12\)$/);
  }, 120_000);

  it("a JavaScript task module in a project marked CommonJS (as `npm init -y` writes it): one line with the fix, not Node's warning", async () => {
    const env = { QWORKER_BROKER_URL: redis.url };
    const cjs = join(tmp, "js-not-esm");
    mkdirSync(join(cjs, "tasks"), { recursive: true });
    writeFileSync(join(cjs, "package.json"), '{"type":"commonjs"}');
    writeFileSync(join(cjs, "tasks", "a.js"), 'import { defineTask } from "qworker";\nexport const a = defineTask("cjs.a", () => 1);\n');
    const fix = /^qworker: error: cannot load task module tasks\/a\.js: task modules are ES modules, and this project is not marked as one: add "type": "module" to its package\.json \(Node: Cannot use import statement outside a module\)$/;
    expectOneLineError(await runCli(["worker"], { cwd: cjs, env, timeoutMs: 40_000 }), 2, fix);
    // With a TypeScript module beside it, loaded through tsx.
    writeFileSync(join(cjs, "tasks", "b.ts"), 'export const b = 1;\n');
    expectOneLineError(await runCli(["worker"], { cwd: cjs, env, timeoutMs: 40_000 }), 2, fix);
    // Only exports: Node's other words for the same thing.
    writeFileSync(join(cjs, "tasks", "a.js"), "export const a = 1;\n");
    expectOneLineError(await runCli(["worker"], { cwd: cjs, env, timeoutMs: 40_000 }), 2, /tasks\/a\.js: task modules are ES modules, .* \(Node: Unexpected token 'export'\)$/);
  }, 120_000);

  it("a worker with no tasks says so as a warning, since it can only fail what it receives", async () => {
    const dir = join(tmp, "no-tasks");
    mkdirSync(join(dir, "tasks"), { recursive: true });
    const w = spawnCli(["worker", "--log-format", "json"], { cwd: dir, env: { QWORKER_BROKER_URL: redis.url, QWORKER_REDIS_PREFIX: "notasks:", QWORKER_HEALTH_DIR: tmp } });
    workers.push(w);
    const line = await w.waitForLine(/no tasks found under tasks: every task this worker receives fails as not registered/, 20_000);
    expect(jsonLogs(line)[0]?.levelName).toBe("warning");
    w.signal("SIGTERM");
    expect(await w.exited).toBe(0);
  });

  it("a module under tasks/ with no task is reported with the way to keep helpers out; _-named ones are not loaded", async () => {
    const dir = join(tmp, "helpers");
    mkdirSync(join(dir, "tasks", "_lib"), { recursive: true });
    writeFileSync(join(dir, "package.json"), '{"type":"module"}');
    writeFileSync(join(dir, "tasks", "util.js"), "export const twice = (x) => 2 * x;\n");
    writeFileSync(join(dir, "tasks", "_db.js"), 'throw new Error("a _ module was loaded");\n');
    writeFileSync(join(dir, "tasks", "_lib", "mail.js"), 'throw new Error("a module in a _ folder was loaded");\n');
    const w = spawnCli(["worker", "--log-format", "json"], { cwd: dir, env: { QWORKER_BROKER_URL: redis.url, QWORKER_REDIS_PREFIX: "helpers:", QWORKER_HEALTH_DIR: tmp } });
    workers.push(w);
    const line = await w.waitForLine(/tasks\/util\.js defines no task/, 20_000);
    expect(jsonLogs(line)[0]?.msg).toBe("tasks/util.js defines no task (export a defineTask(...) to register one, or start the file's or its folder's name with _ to keep a helper out of task discovery)");
    await w.waitForLine(/no tasks found under tasks/, 20_000);
    w.signal("SIGTERM");
    expect(await w.exited).toBe(0);
    expect(w.stderr()).not.toMatch(/was loaded/);
  });

  it("SIGTERM while task modules still load stops the worker with 0, not death by signal", async () => {
    const dir = join(tmp, "slow-load");
    mkdirSync(join(dir, "tasks"), { recursive: true });
    writeFileSync(join(dir, "package.json"), '{"type":"module"}');
    const marker = join(dir, "loading");
    // A module that takes its time at load (a top-level await on a slow resource); the marker says it began.
    writeFileSync(
      join(dir, "tasks", "slow.ts"),
      `import { writeFileSync } from "node:fs";\nwriteFileSync(${JSON.stringify(marker)}, "1");\nawait new Promise((r) => setTimeout(r, 30_000));\nexport const x = 1;\n`,
    );
    const w = spawnCli(["worker", "--log-format", "json"], { cwd: dir, env: { QWORKER_BROKER_URL: redis.url, QWORKER_REDIS_PREFIX: "slowload:" } });
    workers.push(w);
    await waitForFile(marker, 30_000);
    w.signal("SIGTERM");
    const code = await Promise.race([w.exited, new Promise((r) => setTimeout(() => r("still running 10 s after SIGTERM"), 10_000))]);
    expect(code, w.stderr()).toBe(0);
    expect(w.stderr()).toContain("SIGTERM received before the worker started: stopping");
  }, 60_000);

  it("a task module whose top-level await never settles: one line naming it, exit 2, not a 'bug in qworker'", async () => {
    const dir = join(tmp, "never-settles");
    mkdirSync(join(dir, "td"), { recursive: true });
    writeFileSync(join(dir, "package.json"), '{"type":"module"}');
    writeFileSync(
      join(dir, "td", "hang.ts"),
      `import { defineTask } from ${JSON.stringify(join(ROOT, "src", "index.ts"))};\nawait new Promise(() => {});\nexport const a = defineTask("t.a", () => 1);\n`,
    );
    expectOneLineError(
      await runCli(["worker", "--tasks", "td"], { cwd: dir, env: { QWORKER_BROKER_URL: redis.url }, timeoutMs: 40_000 }),
      2,
      /^qworker: error: cannot load task module td\/hang\.ts: its top-level await never finished \(nothing was left to wait for\): /,
    );
  }, 60_000);

  it("with --loglevel=debug the worker's error shows its stack", async () => {
    const closed = `redis://127.0.0.1:${await freePort()}`;
    const r = await runCli(["worker", "--loglevel=debug", "--broker", closed, "--tasks", join(ROOT, "tasks")], {
      cwd: tmp,
      env: { QWORKER_BROKER_CONNECTION_RETRY_ON_STARTUP: "false" },
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^qworker: error: cannot reach Redis/m);
    expect(r.stderr).toMatch(/^BrokerUnreachableError: cannot reach Redis/m);
    expect(r.stderr).toMatch(/^\s+at .+/m);
  });
});

async function waitForFile(path: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (Date.now() > end) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
