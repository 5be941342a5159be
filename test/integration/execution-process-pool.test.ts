import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Client } from "../../src/client/client.ts";
import type { TaskRef } from "../../src/client/types.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { childPids, EXEC_TASKS, ExecEnv, waitUntil, type WorkerProc } from "./execution-harness.ts";

/** Done-when: a busy loop with time_limit 2 in the process pool is stopped at ~2 s, the pool keeps its size, the next task runs. */
describe.skipIf(!redisServerAvailable())("process pool through the real CLI", () => {
  let redis: RedisServerHandle;
  let env: ExecEnv;
  let worker: WorkerProc;
  let client: Client;

  const state = async (id: string) => (await client.ref(id).state())?.state;
  const waitState = (id: string, want: string, ms = 45_000) => waitUntil(async () => (await state(id)) === want, ms, `${id} to be ${want}`);

  beforeAll(async () => {
    redis = await startRedisServer();
    env = new ExecEnv(redis.url, { tasks_dir: EXEC_TASKS, pool: "process", concurrency: 2, max_tasks_per_child: 4 });
    client = await createClient({ brokerUrl: redis.url });
    worker = env.worker();
    await worker.waitForLog(/^tasks \(/, 60_000);
    await waitUntil(() => childPids(worker.pid).length === 2, 10_000, "2 pool children");
  }, 90_000);

  afterAll(async () => {
    await worker?.stop();
    await client?.close();
    await redis?.cleanup();
    env?.cleanup();
  });

  it("kills a task stuck in while(true) at its hard time limit, keeps 2 children, runs the next task", { timeout: 90_000 }, async () => {
    const before = childPids(worker.pid);
    const id = await env.send("exec.busy");
    await waitState(id, "FAILURE");
    const result = await client.ref(id).state();
    expect(result?.error).toMatchObject({ type: "TimeLimitExceeded" });
    const run = env.runs().find((r) => r.id === id)!;
    const killed = worker.logs().find((l) => l.msg.includes(`exec.busy[${id}]: hard time limit of 2 s exceeded`))!;
    expect(killed.time - run.t).toBeGreaterThanOrEqual(1900);
    expect(killed.time - run.t).toBeLessThan(3500);
    expect(before).toContain(run.pid);

    await waitUntil(() => childPids(worker.pid).length === 2 && !childPids(worker.pid).includes(run.pid), 10_000, "the killed child to be replaced");
    const next = await env.send("exec.quick", ["--args", "[1]"]);
    await waitState(next, "SUCCESS");
    // A task's own line, from its pool child, tagged with the child's pid.
    expect(worker.logs().some((l) => /^quick task says hello 1 child=\d+$/.test(l.msg))).toBe(true);
  });

  it("runs CPU-bound tasks in parallel, one child each", { timeout: 90_000 }, async () => {
    const refs = await Promise.all([client.send("exec.cpu", [1500]), client.send("exec.cpu", [1500])]);
    await Promise.all(refs.map((r) => waitState(r.id, "SUCCESS")));
    const runs = env.runs().filter((r) => refs.some((x) => x.id === r.id));
    const starts = runs.filter((r) => r.phase === "start");
    const ends = runs.filter((r) => r.phase === "end");
    expect(new Set(starts.map((r) => r.pid)).size).toBe(2);
    // Both started before either ended: they overlapped.
    expect(Math.max(...starts.map((r) => r.t))).toBeLessThan(Math.min(...ends.map((r) => r.t)));
  });

  it("replaces a child killed mid-task and retries its task by policy (then fails it), never losing it", { timeout: 90_000 }, async () => {
    const id = await env.send("exec.crash");
    await waitState(id, "FAILURE");
    expect(env.runs().filter((r) => r.id === id)).toHaveLength(2); // first run + 1 retry (max: 1)
    expect((await client.ref(id).state())?.error).toMatchObject({ type: "WorkerLostError" });
    await waitUntil(() => childPids(worker.pid).length === 2, 10_000, "the pool back at 2 children");
  });

  it("recycles a child after max_tasks_per_child tasks", { timeout: 90_000 }, async () => {
    const refs: TaskRef[] = [];
    for (let i = 0; i < 8; i++) refs.push(await client.send("exec.quick", [100 + i]));
    await Promise.all(refs.map((r) => waitState(r.id, "SUCCESS")));
    await worker.waitForLog(/^pool child \d+ recycled after 4 tasks \(max_tasks_per_child\)$/);
    await waitUntil(() => childPids(worker.pid).length === 2, 10_000, "the pool back at 2 children");
  });

  it("revoke --terminate stops a busy child: signal first, then a kill, recorded as REVOKED", { timeout: 90_000 }, async () => {
    const id = await env.send("exec.busy", ["--time-limit", "60"]);
    await waitUntil(() => env.runs().some((r) => r.id === id), 10_000, "the busy task to start");
    const r = await env.cli(["revoke", id, "--terminate"]);
    expect(r.code, r.stderr).toBe(0);
    const t0 = Date.now();
    await waitState(id, "REVOKED");
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(worker.logs().some((l) => l.msg.includes(`exec.busy[${id}]: still running 2 s after it was aborted`))).toBe(true);
    await waitUntil(() => childPids(worker.pid).length === 2, 10_000, "the pool back at 2 children");
  });
});
