/**
 * What the CLI's workers record for observers (task events, `inspect stats` counters, Prometheus metrics):
 * the demo's worker records them as `qworker worker` does, on either broker, and a worker started on a
 * backlog counts the tasks it takes at once in its metrics too (its observers listen before it consumes).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import { createClient } from "../../src/client/client.ts";
import { startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { ROOT, runCli, spawnCli, waitFor } from "./helpers.ts";

const tmp = mkdtempSync(join(tmpdir(), "qworker-e2e-observers-"));
let redis: RedisServerHandle | undefined;
afterAll(async () => {
  await redis?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

const TASKS = join(ROOT, "tasks");

describe("qworker demo records task events and stats like a worker", { timeout: 120_000 }, () => {
  for (const kind of ["sqlite", "redis"] as const) {
    it(`on ${kind}: inspect events and inspect stats show the example tasks after demo --exit`, async () => {
      const dir = mkdtempSync(join(tmp, `demo-${kind}-`));
      const broker = kind === "sqlite" ? `sqlite://${join(dir, "b.db")}` : (redis ??= await startRedisServer()).url;
      const demo = await runCli(["demo", "--exit", "--tasks", TASKS, "--broker", broker], { cwd: dir, env: { QWORKER_DEMO_FAIL_RATE: "0" }, timeoutMs: 60_000 });
      expect(demo.code, demo.stderr.slice(-3000)).toBe(0);
      expect(demo.stdout).toContain("5/5 example tasks succeeded");

      const events = await runCli(["inspect", "events", "--json", "--limit", "100", "--broker", broker], { cwd: dir, timeoutMs: 30_000 });
      expect(events.code, events.stderr).toBe(0);
      const evs = (JSON.parse(events.stdout) as { events: { type: string; task: string }[] }).events;
      expect(evs.filter((e) => e.task === "demo.add").map((e) => e.type)).toEqual(["task-received", "task-started", "task-succeeded"]);
      expect(new Set(evs.filter((e) => e.type === "task-succeeded").map((e) => e.task))).toEqual(
        new Set(["demo.add", "shop.send_invoice_email", "shop.notify_warehouse", "reports.generate", "demo.risky"]),
      );

      const stats = await runCli(["inspect", "stats", "--json", "--broker", broker], { cwd: dir, timeoutMs: 30_000 });
      expect(stats.code, stats.stderr).toBe(0);
      const report = JSON.parse(stats.stdout) as { tasks: { task: string; received: number; succeeded: number }[] };
      expect(report.tasks.find((t) => t.task === "demo.add")).toMatchObject({ received: 1, succeeded: 1 });
      expect(report.tasks).toHaveLength(5);
    });
  }
});

describe("qworker worker started on a backlog", { timeout: 120_000 }, () => {
  it("counts the tasks it takes at once in its metrics", async () => {
    const dir = mkdtempSync(join(tmp, "backlog-"));
    const url = `sqlite://${join(dir, "b.db")}`;
    const transport = createSqliteTransport(url);
    await transport.connect();
    const client = await createClient({ transport });
    try {
      const refs = await Promise.all(Array.from({ length: 20 }, (_, i) => client.send("demo.add", [i, 1])));
      const w = spawnCli(["worker", "--tasks", TASKS, "--broker", url, "--metrics-port", "0", "--log-format", "json"], {
        cwd: dir,
        env: { QWORKER_METRICS_HOST: "127.0.0.1" },
      });
      try {
        const line = await w.waitForLine(/metrics: http:\/\/127\.0\.0\.1:\d+\/metrics/, 40_000);
        const port = /127\.0\.0\.1:(\d+)\/metrics/.exec(line)![1];
        await waitFor("the backlog's results", async () => ((await Promise.all(refs.map((r) => transport.getResult(r.id)))).every((r) => r !== null) ? true : undefined), 30_000);
        const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        expect(metrics).toContain('qworker_tasks_received_total{task="demo.add",queue="default"} 20');
        expect(metrics).toContain('qworker_tasks_succeeded_total{task="demo.add",queue="default"} 20');
      } finally {
        w.signal("SIGTERM");
        expect(await w.exited).toBe(0);
      }
    } finally {
      await client.close();
    }
  });
});
