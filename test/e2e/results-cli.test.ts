/**
 * Results and operations through the real CLI: send --wait, result, inspect workers/active/stats/events,
 * the library's get(), result expiry and the metrics endpoint. One private redis-server; two workers on
 * short heartbeats so a killed one drops out quickly.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { createClient } from "../../src/client/client.ts";
import { startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { ROOT, runCli, spawnCli, waitFor, type CliProcess } from "./helpers.ts";

const INDEX = pathToFileURL(join(ROOT, "src/index.ts")).href;

const TASKS = `
import { defineTask, taskContext } from ${JSON.stringify(INDEX)};
export const add = defineTask({ name: "demo.add" }, (x: number, y: number) => x + y);
export const boom = defineTask({ name: "demo.boom", retry: false }, (n: number) => {
  throw new TypeError("bad input " + n);
});
export const slow = defineTask({ name: "demo.slow" }, async (ms: number) => {
  taskContext().progress(0.4, "resizing");
  await new Promise((r) => setTimeout(r, ms));
  return "done";
});
export const login = defineTask({ name: "demo.login", secretArgs: [1] }, (user: string, _password: string) => user);
`;

let redis: RedisServerHandle;
/** For polling conditions cheaply; every assertion about output goes through the CLI. */
let t: Transport;
let dir: string;
let env: Record<string, string>;
const workers: CliProcess[] = [];

function startWorker(extra: string[] = [], extraEnv: Record<string, string> = {}): CliProcess {
  const w = spawnCli(["worker", "--tasks", join(dir, "tasks"), "--log-format", "json", "-c", "4", ...extra], { cwd: dir, env: { ...env, ...extraEnv } });
  workers.push(w);
  return w;
}

const cli = (args: string[], timeoutMs = 25_000) => runCli(args, { cwd: dir, env, timeoutMs });

beforeAll(async () => {
  redis = await startRedisServer();
  t = createRedisTransport(redis.url);
  await t.connect();
  dir = mkdtempSync(join(tmpdir(), "qw-results-"));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  const tasks = join(dir, "tasks");
  mkdirSync(tasks);
  writeFileSync(join(tasks, "demo.ts"), TASKS);
  env = {
    QWORKER_FROM_SOURCE: "1",
    QWORKER_BROKER_URL: redis.url,
    QWORKER_HEARTBEAT_INTERVAL: "0.3",
    QWORKER_HEARTBEAT_TTL: "2",
    QWORKER_RESULT_EXPIRES: "600",
  };
  const a = startWorker();
  const b = startWorker(["--metrics-port", "0"], { QWORKER_METRICS_HOST: "127.0.0.1" });
  // A third worker, on its own queue, keeps results for 2 s only.
  const c = startWorker(["-Q", "short"], { QWORKER_RESULT_EXPIRES: "2" });
  await Promise.all([a.waitForLine(/tasks \(/, 40_000), b.waitForLine(/metrics: http/, 40_000), c.waitForLine(/tasks \(/, 40_000)]);
}, 60_000);

afterAll(async () => {
  for (const w of workers) w.signal("SIGKILL");
  await Promise.all(workers.map((w) => w.exited));
  await t?.close();
  await redis?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("send --wait and result", { timeout: 90_000 }, () => {
  it("prints the id, then the result as JSON; exit 0", async () => {
    const r = await cli(["send", "demo.add", "--args", "[2,3]", "--wait", "5"]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(lines[1]).toBe("5");
  });

  it("--id names the task; sent again while it is queued, it is not queued twice; an empty --id is refused", async () => {
    // A queue no worker here consumes, so the first copy is still queued when the second is sent.
    const first = await cli(["send", "demo.add", "--args", "[1,1]", "--queue", "nobody", "--id", "order-42-invoice"]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe("order-42-invoice\n");
    expect(first.stderr).toBe("");
    const again = await cli(["send", "demo.add", "--args", "[1,1]", "--queue", "nobody", "--id", "order-42-invoice"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe("order-42-invoice\n");
    expect(again.stderr).toBe("task order-42-invoice was already queued or running; not sent again\n");
    expect((await t.stats(["nobody"]))[0]).toMatchObject({ ready: 1 });
    const empty = await cli(["send", "demo.add", "--id", " "]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toBe("qworker: error: --id: expected a task id, found an empty string\n");
  });

  it("a failing task exits 1 with its error on stderr, and `result` shows it", async () => {
    const r = await cli(["send", "demo.boom", "--args", "[42]", "--wait", "5"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("TypeError: bad input 42");
    const id = r.stdout.trim().split("\n")[0]!;
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    const shown = await cli(["result", id, "--json"]);
    // Exit 1 for a task that ended badly, with or without --wait (as `result --celery` does).
    expect(shown.code).toBe(1);
    const rec = JSON.parse(shown.stdout) as { state: string; error: { type: string; message: string; stack?: string }; argsPreview: string };
    expect(rec).toMatchObject({ state: "FAILURE", error: { type: "TypeError", message: "bad input 42" }, argsPreview: "[42]" });
    expect(rec.error.stack).toContain("bad input 42");
  });

  it("times out with exit 124 when no worker consumes the queue", async () => {
    const r = await cli(["send", "demo.add", "--args", "[1,1]", "--queue", "nobody-here", "--wait", "0.5"]);
    expect(r.code).toBe(124);
    expect(r.stderr).toMatch(/no result for task .* within 0.5 s/);
    const id = r.stdout.trim();
    const shown = await cli(["result", id, "--json"]);
    expect(JSON.parse(shown.stdout)).toMatchObject({ id, state: "PENDING", task: "demo.add", queue: "nobody-here" });
    expect(shown.code).toBe(0);
  });

  it("secret arguments are masked in the stored result", async () => {
    const r = await cli(["send", "demo.login", "--args", '["ann","hunter2"]', "--wait", "5"]);
    expect(r.code, r.stderr).toBe(0);
    const shown = await cli(["result", r.stdout.split("\n")[0]!]);
    expect(shown.stdout).toContain("state:    SUCCESS");
    expect(shown.stdout).toContain('["ann","«secret»"]');
    expect(shown.stdout).not.toContain("hunter2");
  });

  it("results expire after result_expires", async () => {
    const client = await createClient({ transport: t });
    const ref = await client.send("demo.add", [4, 4], { queue: "short" });
    expect(await ref.get({ timeout: 10 })).toBe(8);
    const id = ref.id;
    const stored = await ref.state();
    expect(stored).toMatchObject({ state: "SUCCESS", result: 8 });
    await waitFor("the result to expire (result_expires=2)", async () => ((await t.getResult(id)) === null ? true : undefined), 6000, 50);
    const lived = Date.now() - stored!.finishedAt!;
    expect(lived).toBeGreaterThan(1500);
    expect(lived).toBeLessThan(4000);
    expect(JSON.parse((await cli(["result", id, "--json"])).stdout)).toEqual({ id, state: "PENDING" });
  });
});

describe("library", { timeout: 60_000 }, () => {
  it("get() resolves with the value, rejects with the task's error, and works when the result already exists", async () => {
    const script = `
      import { createClient } from ${JSON.stringify(INDEX)};
      const client = await createClient();
      const out = {};
      out.sum = await (await client.send("demo.add", [20, 22])).get({ timeout: 5 });
      try { await (await client.send("demo.boom", [7])).get({ timeout: 5 }); } catch (e) { out.err = { name: e.name, message: e.message, stack: e.stack }; }
      const early = await client.send("demo.add", [1, 2]);
      for (let i = 0; i < 100 && !(await early.state()); i++) await new Promise((r) => setTimeout(r, 50));
      out.stored = (await early.state())?.state;
      out.late = await early.get({ timeout: 2 });
      await client.close();
      console.log(JSON.stringify(out));
    `;
    writeFileSync(join(dir, "client.ts"), script);
    // Run from the repository so `--import tsx` resolves; the environment carries the broker URL.
    const r = spawnSync(process.execPath, ["--import", "tsx", join(dir, "client.ts")], { cwd: ROOT, env: { ...process.env, ...env }, encoding: "utf8", timeout: 45_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split("\n").pop()!) as { sum: number; err: { name: string; message: string; stack: string }; stored: string; late: number };
    expect(out.sum).toBe(42);
    expect(out.err).toMatchObject({ name: "TypeError", message: "bad input 7" });
    expect(out.err.stack).toContain("bad input 7");
    expect(out.stored).toBe("SUCCESS");
    expect(out.late).toBe(3);
  });
});

describe("inspect", { timeout: 90_000 }, () => {
  it("active shows a running slow task with its progress and runtime", async () => {
    const sent = await cli(["send", "demo.slow", "--args", "[15000]"]);
    const id = sent.stdout.trim();
    // Progress travels with the next heartbeat (every 0.3 s here).
    await waitFor("the slow task's progress in a heartbeat", async () => ((await t.workers()).some((w) => w.progress?.[id]) ? true : undefined), 5000, 100);
    const r = await cli(["inspect", "active", "--json"]);
    const row = (JSON.parse(r.stdout) as { active: { id: string; task: string; progress?: { fraction: number; note?: string }; runtimeMs: number }[] }).active.find((x) => x.id === id);
    expect(row).toMatchObject({ task: "demo.slow", progress: { fraction: 0.4, note: "resizing" } });
    expect(row!.runtimeMs).toBeGreaterThan(0);
    const human = await cli(["inspect", "active"]);
    expect(human.stdout).toContain(id);
    expect(human.stdout).toContain("40% resizing");
    const status = await cli(["result", id]);
    expect(status.stdout).toContain("state:    STARTED");
    expect(status.stdout).toContain("progress: 40% resizing");
  });

  it("stats and events reflect finished tasks", async () => {
    const stats = JSON.parse((await cli(["inspect", "stats", "--json"])).stdout) as { tasks: { task: string; succeeded: number; failed: number }[] };
    expect(stats.tasks.find((x) => x.task === "demo.add")?.succeeded).toBeGreaterThanOrEqual(2);
    expect(stats.tasks.find((t) => t.task === "demo.boom")?.failed).toBeGreaterThanOrEqual(1);
    const ev = JSON.parse((await cli(["inspect", "events", "--json", "--limit", "500"])).stdout) as { events: { type: string; task?: string; args?: string }[] };
    expect(ev.events.some((e) => e.type === "task-succeeded" && e.task === "demo.add")).toBe(true);
    expect(ev.events.some((e) => e.type === "task-failed" && e.task === "demo.boom")).toBe(true);
    expect(JSON.stringify(ev.events)).not.toContain("hunter2");
  });

  it("metrics endpoint counts tasks", async () => {
    const line = await workers[1]!.waitForLine(/metrics: http/, 1000);
    // metrics_host: only on the loopback interface, as asked.
    expect(line).toMatch(/metrics: http:\/\/127\.0\.0\.1:\d+\/metrics/);
    const port = /:(\d+)\/metrics/.exec(line)![1];
    const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(body).toMatch(/qworker_queue_tasks\{queue="default",state="ready"\} \d+/);
    expect(body).toContain("qworker_task_runtime_seconds_bucket");
  });

  it("workers --json lists both workers with pids; a killed one drops out within its heartbeat TTL", async () => {
    const list = async () => (JSON.parse((await cli(["inspect", "workers", "--json"])).stdout) as { workers: { pid: number; alive: boolean }[] }).workers;
    const before = await list();
    expect(before.map((w) => w.pid).sort()).toEqual(workers.map((w) => w.pid).sort());
    expect(before.every((w) => w.alive)).toBe(true);
    const victim = workers[0]!;
    victim.signal("SIGKILL");
    await victim.exited;
    const killedAt = Date.now();
    await waitFor("the killed worker to drop out", async () => ((await t.workers()).some((w) => w.pid === victim.pid) ? undefined : true), 5000, 50);
    expect(Date.now() - killedAt).toBeLessThan(2000 + 500); // heartbeat_ttl = 2 s
    expect((await list()).map((w) => w.pid).sort()).toEqual([workers[1]!.pid, workers[2]!.pid].sort());
  });
});
