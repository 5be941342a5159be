/**
 * The observability surface after a known run, as an operator reads it: a worker on the embedded broker with
 * `--metrics-port 0` runs two successes, one failure and a task that fails three times (two retries), and
 * /metrics, `inspect stats --json` and the task events agree with what happened.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, runCli, spawnCli, waitFor, type CliProcess } from "./helpers.ts";

const INDEX = pathToFileURL(join(ROOT, "src/index.ts")).href;
const dir = mkdtempSync(join(tmpdir(), "qworker-e2e-metrics-"));
let worker: CliProcess | undefined;
afterAll(async () => {
  if (worker) {
    worker.signal("SIGKILL");
    await worker.exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

/** `name{labels} value` lines of a Prometheus text page, by name and label text. */
function samples(page: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of page.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out.set(`${m[1]}${m[2] ?? ""}`, Number(m[3]));
  }
  return out;
}

describe("metrics, stats and events after a known run", () => {
  let url: string;
  beforeAll(async () => {
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    mkdirSync(join(dir, "tasks"));
    writeFileSync(
      join(dir, "tasks", "obs.ts"),
      `import { defineTask } from ${JSON.stringify(INDEX)};
export const ok = defineTask({ name: "obs.ok" }, (n: number) => n * 2);
export const boom = defineTask({ name: "obs.boom", retry: false }, () => { throw new Error("kaput"); });
export const flaky = defineTask({ name: "obs.flaky", retry: { max: 2, countdown: 4, backoff: false, jitter: false } }, () => {
  throw new Error("flaky");
});
export const slow = defineTask({ name: "obs.slow" }, async (ms: number) => {
  await new Promise((r) => setTimeout(r, ms));
  return "done";
});
`,
    );
    // The broker must exist before the worker watches it; the first send creates it.
    const first = await runCli(["send", "obs.ok", "--args", "[1]"], { cwd: dir });
    expect(first.code, first.stderr).toBe(0);
    worker = spawnCli(["worker", "--tasks", join(dir, "tasks"), "--log-format", "json", "--metrics-port", "0"], {
      cwd: dir,
      env: { QWORKER_FROM_SOURCE: "1", QWORKER_METRICS_HOST: "127.0.0.1", QWORKER_HEALTH_DIR: join(dir, "health") },
    });
    const line = await worker.waitForLine(/metrics: http:\/\/127\.0\.0\.1:\d+\/metrics/, 30_000);
    url = /(http:\/\/127\.0\.0\.1:\d+\/metrics)/.exec(line)![1]!;
  }, 60_000);

  it("count what ran, and a retry's queue wait starts when its backoff ends", { timeout: 60_000 }, async () => {
    const ids: string[] = [];
    for (const args of [["obs.ok", "--args", "[2]"], ["obs.boom"], ["obs.flaky"]]) {
      const r = await runCli(["send", ...args], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      ids.push(r.stdout.trim());
    }
    await worker!.waitForLine(/obs\.flaky\[.*failed after 2 retries/, 30_000);

    const page = await waitFor(
      "the final failure in /metrics",
      async () => {
        const text = await (await fetch(url)).text();
        return samples(text).get('qworker_tasks_failed_total{task="obs.flaky",queue="default"}') === 1 ? text : undefined;
      },
      5_000,
    );
    const m = samples(page);
    const at = (name: string, task: string) => m.get(`${name}{task="${task}",queue="default"}`) ?? 0;
    expect([at("qworker_tasks_received_total", "obs.ok"), at("qworker_tasks_succeeded_total", "obs.ok"), at("qworker_tasks_failed_total", "obs.ok")]).toEqual([2, 2, 0]);
    expect([at("qworker_tasks_received_total", "obs.boom"), at("qworker_tasks_failed_total", "obs.boom"), at("qworker_tasks_retried_total", "obs.boom")]).toEqual([1, 1, 0]);
    expect([at("qworker_tasks_received_total", "obs.flaky"), at("qworker_tasks_failed_total", "obs.flaky"), at("qworker_tasks_retried_total", "obs.flaky")]).toEqual([3, 1, 2]);
    // Prometheus conventions: counters end in _total, durations are in seconds.
    for (const [, name, type] of page.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      if (type === "counter") expect(name).toMatch(/_total$/);
      if (type === "histogram" && name!.startsWith("qworker_task")) expect(name).toMatch(/_seconds$/);
    }
    // Each of the three runs of obs.flaky was picked up as soon as it was due: a retry's 4 s backoff is not
    // time spent waiting in the queue (counted from the send, the third run waited 8 s).
    expect(m.get('qworker_task_queue_wait_seconds_bucket{le="5",task="obs.flaky",queue="default"}')).toBe(3);

    const stats = await runCli(["inspect", "stats", "--json"], { cwd: dir });
    expect(stats.code, stats.stderr).toBe(0);
    const report = JSON.parse(stats.stdout) as { tasks: { task: string; received: number; succeeded: number; failed: number; retried: number }[] };
    const byTask = Object.fromEntries(report.tasks.map(({ task, received, succeeded, failed, retried }) => [task, { received, succeeded, failed, retried }]));
    expect(byTask).toEqual({
      "obs.ok": { received: 2, succeeded: 2, failed: 0, retried: 0 },
      "obs.boom": { received: 1, succeeded: 0, failed: 1, retried: 0 },
      "obs.flaky": { received: 3, succeeded: 0, failed: 1, retried: 2 },
    });

    // The worker's own counts (`inspect workers`) agree: processed is every finished task (two successes,
    // two final failures), with succeeded and failed beside it; a retried run is not finished.
    const counts = await waitFor(
      "the final failure in the worker's heartbeat",
      async () => {
        const r = await runCli(["inspect", "workers", "--json"], { cwd: dir });
        const w = (JSON.parse(r.stdout) as { workers: { pid: number; processed: number; succeeded: number; failed: number; counts: { retried: number } }[] }).workers.find(
          (x) => x.pid === worker!.pid,
        );
        return w && w.failed >= 2 ? { processed: w.processed, succeeded: w.succeeded, failed: w.failed, retried: w.counts.retried } : undefined;
      },
      10_000,
      300,
    );
    expect(counts).toEqual({ processed: 4, succeeded: 2, failed: 2, retried: 2 });
    const table = await runCli(["inspect", "workers"], { cwd: dir });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/│ processed │ succeeded │ failed │/);
    expect(table.stdout).toMatch(/│ 4\s+│ 2\s+│ 2\s+│/);

    const events = await runCli(["inspect", "events", "--json", "--limit", "100"], { cwd: dir });
    expect(events.code, events.stderr).toBe(0);
    const received = (JSON.parse(events.stdout) as { events: { type: string; task?: string; waitMs?: number }[] }).events.filter(
      (e) => e.type === "task-received" && e.task === "obs.flaky",
    );
    expect(received).toHaveLength(3);
    for (const e of received) expect(e.waitMs).toBeLessThan(3000);

    // `result --json` reports the run time as the task events do (rounded to 0.1 ms), not 0.0481999999.
    const okId = ids[0]!;
    const succeeded = (JSON.parse(events.stdout) as { events: { type: string; id: string; runtimeMs?: number }[] }).events.find((e) => e.type === "task-succeeded" && e.id === okId);
    const result = await runCli(["result", okId, "--json"], { cwd: dir });
    expect(result.code, result.stderr).toBe(0);
    const runtimeMs = (JSON.parse(result.stdout) as { runtimeMs: number }).runtimeMs;
    expect(runtimeMs).toBe(succeeded!.runtimeMs);
    expect(String(runtimeMs)).toMatch(/^\d+(\.\d)?$/);
  });

  it("inspect active --json names a task's worker in the field result --json and the events use", { timeout: 30_000 }, async () => {
    const sent = await runCli(["send", "obs.slow", "--args", "[4000]"], { cwd: dir });
    expect(sent.code, sent.stderr).toBe(0);
    const id = sent.stdout.trim();
    const row = await waitFor(
      "the task in inspect active",
      async () => {
        const r = await runCli(["inspect", "active", "--json"], { cwd: dir });
        return (JSON.parse(r.stdout) as { active: Record<string, unknown>[] }).active.find((a) => a.id === id);
      },
      10_000,
      200,
    );
    const status = JSON.parse((await runCli(["result", id, "--json"], { cwd: dir })).stdout) as Record<string, unknown>;
    expect(status.worker).toEqual(expect.stringMatching(/\S/));
    expect(row).toMatchObject({ task: "obs.slow", worker: status.worker });
    expect(row).not.toHaveProperty("workerId");
  });

  it("every --json output follows one rule: camelCase keys, times (…At, ts, lastBeat, leaseUntil, since) as epoch ms", { timeout: 60_000 }, async () => {
    const scheduled = await runCli(["send", "obs.ok", "--args", "[3]", "--countdown", "600"], { cwd: dir });
    expect(scheduled.code, scheduled.stderr).toBe(0);
    const slow = await runCli(["send", "obs.slow", "--args", "[4000]"], { cwd: dir });
    const slowId = slow.stdout.trim();
    await waitFor(
      "the slow task to start",
      async () => ((await runCli(["inspect", "active", "--json"], { cwd: dir })).stdout.includes(slowId) ? true : undefined),
      10_000,
      200,
    );
    const boom = await runCli(["send", "obs.boom"], { cwd: dir });
    const deadId = boom.stdout.trim();
    const dead = await waitFor(
      "the failed task in dead --json",
      async () => {
        const lines = (await runCli(["dead", "--json"], { cwd: dir })).stdout.trim().split("\n");
        return lines.some((l) => l.includes(deadId)) ? lines : undefined;
      },
      10_000,
      200,
    );
    const outputs: [string, string][] = [];
    for (const args of [
      ["inspect", "queues", "--json"],
      ["inspect", "workers", "--json"],
      ["inspect", "active", "--json"],
      ["inspect", "scheduled", "--json"],
      ["inspect", "dead", "--json"],
      ["inspect", "stats", "--json"],
      ["inspect", "events", "--json"],
      ["result", slowId, "--json"],
      ["result", deadId, "--json"],
      ["result", scheduled.stdout.trim(), "--json"],
    ]) {
      outputs.push([args.join(" "), (await runCli(args, { cwd: dir })).stdout]);
    }
    for (const line of dead) outputs.push(["dead --json", line]);
    const now = Date.now();
    const problems: string[] = [];
    const walk = (where: string, v: unknown, key?: string): void => {
      if (key !== undefined && !/^[a-z][a-zA-Z]*$/.test(key)) problems.push(`${where}: key ${key} is not camelCase`);
      if (key !== undefined && /(At|^ts|^lastBeat|^leaseUntil|^since)$/.test(key) && !(typeof v === "number" && Math.abs(v - now) < 3_600_000)) {
        problems.push(`${where}: ${key} is ${JSON.stringify(v)}, not a recent epoch ms`);
      }
      // A task's return value is the task's own data.
      if (key === "result") return;
      if (Array.isArray(v)) v.forEach((x) => walk(where, x));
      else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(where, x, k);
    };
    for (const [where, text] of outputs) walk(where, JSON.parse(text));
    expect(problems).toEqual([]);
  });
});
