import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { createClient, type Client } from "../../src/client/client.ts";
import { configSchema } from "../../src/config/schema.ts";
import { decodeEvent } from "../../src/events/format.ts";
import { ActivityRecorder } from "../../src/events/recorder.ts";
import { NonRetryableError } from "../../src/errors.ts";
import { taskContext } from "../../src/tasks/context.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { Worker } from "../../src/worker/worker.ts";
import { jsonLogs, spawnCli, waitFor, type CliProcess } from "../e2e/helpers.ts";
import { startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

let redis: RedisServerHandle;
let prefixSeq = 0;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  redis = await startRedisServer();
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});
afterAll(async () => {
  await redis?.cleanup();
});

// Tasks whose runs the tests can observe.
const runs = new Map<string, number[]>();
function noteRun(name: string): void {
  runs.set(name, [...(runs.get(name) ?? []), Date.now()]);
}
let flakyFailures = 0;
/** demo.hold runs until the test calls this. */
let releaseHold: () => void = () => {};
const tasks = [
  defineTask({ name: "demo.add", params: ["x", "y"] }, (x: number, y: number) => {
    noteRun("demo.add");
    return x + y;
  }),
  defineTask("demo.declined", () => {
    throw new NonRetryableError("card declined");
  }),
  defineTask("demo.hold", async () => {
    noteRun("demo.hold");
    await new Promise<void>((r) => (releaseHold = r));
    return "held";
  }),
  defineTask("demo.nap", async (ms: number) => {
    await new Promise((r) => setTimeout(r, ms));
    return ms;
  }),
  // Fails with an error of its own as soon as it is told to stop, as careful task code does.
  defineTask({ name: "demo.abortable", retry: { max: 3, countdown: 0.05, jitter: false } }, async () => {
    noteRun("demo.abortable");
    const signal = taskContext().signal;
    await new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("stopped: upload cancelled"))));
  }),
  defineTask({ name: "demo.limited", rateLimit: "100/s" }, () => {
    noteRun("demo.limited");
    return "ok";
  }),
  defineTask({ name: "demo.flaky", retry: { max: 3, countdown: 0.05, jitter: false } }, () => {
    if (flakyFailures-- > 0) throw new Error("flaky dependency");
    return "ok";
  }),
];

/**
 * A worker and a client on their own key prefix, so tests never see each other's queues. `intercept` may
 * replace methods of the worker's transport before the worker starts.
 */
async function setup(overrides: Record<string, unknown> = {}, intercept?: (transport: Transport) => void): Promise<{ worker: Worker; client: Client; logs: string[]; transport: Transport }> {
  const prefix = `wr${++prefixSeq}:`;
  const config = configSchema.parse({ broker_url: redis.url, redis_prefix: prefix, concurrency: 4, lease_timeout: 5, heartbeat_interval: 0.5, ...overrides });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split("\n")) if (line) logs.push((JSON.parse(line) as { msg: string }).msg);
      cb();
    },
  });
  const registry = new TaskRegistry();
  for (const t of tasks) registry.register(t.name!, t as never, "test");
  const transport = createRedisTransport(redis.url, { prefix });
  await transport.connect();
  intercept?.(transport);
  const worker = new Worker({ transport, registry, config: { ...config, broker_url: redis.url }, logger: pino({ level: "debug" }, sink) });
  await worker.start();
  const clientTransport = createRedisTransport(redis.url, { prefix, failFast: true });
  const client = await createClient({ transport: clientTransport });
  await clientTransport.connect();
  cleanups.push(async () => {
    await worker.stop();
    await transport.close();
  });
  cleanups.push(() => client.close());
  return { worker, client, logs, transport };
}

describe("Worker + RedisTransport", () => {
  it("runs tasks and stores their results", async () => {
    const { client, transport } = await setup();
    const sum = await client.send<number>("demo.add", [2, 3]);
    const byName = await client.send<number>("demo.add", [], { kwargs: { x: 10, y: 5 } });
    expect(await sum.get({ timeout: 5 })).toBe(5);
    expect(await byName.get({ timeout: 5 })).toBe(15);
    const state = await sum.state();
    expect(state).toMatchObject({ id: sum.id, state: "SUCCESS", task: "demo.add", result: 5, retries: 0 });
    const [counts] = await transport.stats(["default"]);
    expect(counts).toMatchObject({ name: "default", ready: 0, delayed: 0, active: 0, dead: 0 });
  });

  it("sendMany: 2,500 tasks in chunks of 1,000, refs in order, a unique key honoured across them; a bad call sends nothing", async () => {
    const { client, transport } = await setup({ concurrency: 50 });
    const calls = Array.from({ length: 2500 }, (_, i) => ({ task: "demo.add", args: [i, 1] }));
    calls[1200] = { task: "demo.add", args: [1, 1], options: { uniqueKey: "once", id: "uniq-a" } } as (typeof calls)[number];
    calls[2100] = { task: "demo.add", args: [2, 2], options: { uniqueKey: "once", id: "uniq-b" } } as (typeof calls)[number];
    const refs = await client.sendMany(calls);
    expect(refs).toHaveLength(2500);
    expect(new Set(refs.map((r) => r.id)).size).toBe(2499);
    expect(refs[1200]).toMatchObject({ id: "uniq-a", duplicate: false });
    expect(refs[2100]).toMatchObject({ id: "uniq-a", duplicate: true });
    const values = await Promise.all([0, 999, 1000, 2499].map((i) => refs[i]!.get({ timeout: 20 })));
    expect(values).toEqual([1, 1000, 1001, 2500]);

    const before = (await transport.stats(["default"]))[0];
    await expect(client.sendMany([{ task: "demo.add", args: [1, 2] }, { task: "demo.add", args: [1n] }])).rejects.toThrow();
    expect((await transport.stats(["default"]))[0]).toMatchObject({ ready: before?.ready ?? 0, delayed: 0 });
  });

  it("with one slot free beside a long task, each task sent starts at once (the fetch lanes do not wait for the long one)", async () => {
    // No prefetch: both lanes share the one free slot's budget, the case in which a lane used to sleep until
    // a running task ended.
    const { client } = await setup({ concurrency: 2, prefetch: 0 });
    const hold = await client.send("demo.hold");
    await waitFor("the long task to start", () => (runs.get("demo.hold")?.length ? true : undefined), 5000);
    try {
      // Synchronous and asynchronous tasks: the lanes' order of waking differs between them.
      for (let i = 0; i < 12; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const started = Date.now();
        const ref = i % 2 ? await client.send<number>("demo.add", [i, 1]) : await client.send<number>("demo.nap", [20]);
        expect(await ref.get({ timeout: 5 })).toBe(i % 2 ? i + 1 : 20);
        expect(Date.now() - started, `task ${i}`).toBeLessThan(1000);
      }
    } finally {
      releaseHold();
    }
    expect(await hold.get({ timeout: 5 })).toBe("held");
  }, 30_000);

  it("a cold stop hands a running task back whole: its failure on being told to stop uses up no retry", async () => {
    const { worker, client, logs, transport } = await setup();
    const ref = await client.send("demo.abortable");
    await waitFor("the task to start", () => (runs.get("demo.abortable")?.length ? true : undefined), 5000);
    await worker.stop({ cold: true });
    // Give a retry that was wrongly scheduled time to land.
    await new Promise((r) => setTimeout(r, 200));
    expect(logs.filter((l) => /retry|failed/.test(l))).toEqual([]);
    expect(logs).toContain("handed back 1 unfinished task(s) to the queue");
    const [counts] = await transport.stats(["default"]);
    expect(counts).toMatchObject({ ready: 1, delayed: 0, active: 0, dead: 0 });
    expect((await ref.state())?.state ?? "PENDING").toBe("PENDING");
  });

  it("a foreign message whose expiry no Date can hold ends EXPIRED, not in a loop of internal errors", async () => {
    const { client, transport, logs } = await setup();
    const id = `far-past-${Date.now()}`;
    const msg = { v: 1, id, task: "demo.add", args: [1, 2], kwargs: {}, queue: "default", priority: 0, retries: 0, sentAt: Date.now(), expires: -1e20 };
    await transport.enqueue([{ id, queue: "default", priority: 0, payload: JSON.stringify(msg) }]);
    await waitFor("the task to end", async () => ((await client.ref(id).state())?.state === "EXPIRED" ? true : undefined), 5000);
    expect(logs.filter((l) => l.includes("internal error"))).toEqual([]);
    expect(logs).toContain(`task demo.add[${id}] expired at -100000000000000000000; not run`);
  });

  it("a failure is stored with its error; a flaky task retries then succeeds", async () => {
    const { client } = await setup();
    const declined = await client.send("demo.declined");
    await expect(declined.get({ timeout: 5 })).rejects.toThrow("card declined");
    expect(await declined.state()).toMatchObject({ state: "FAILURE", error: { type: "NonRetryableError", message: "card declined", code: "E_NON_RETRYABLE" } });
    flakyFailures = 2;
    const flaky = await client.send("demo.flaky");
    expect(await flaky.get({ timeout: 5 })).toBe("ok");
    expect(await flaky.state()).toMatchObject({ state: "SUCCESS", retries: 2 });
  });

  it("countdown 2 s: not run before 2 s, then run exactly once", async () => {
    const { client, transport } = await setup();
    runs.delete("demo.add");
    const sentAt = Date.now();
    const ref = await client.send<number>("demo.add", [2, 3], { countdown: 2 });
    await new Promise((r) => setTimeout(r, 1500));
    expect(runs.get("demo.add")).toBeUndefined();
    expect((await transport.stats(["default"]))[0]).toMatchObject({ delayed: 1, ready: 0 });
    expect(await ref.get({ timeout: 5 })).toBe(5);
    const ran = runs.get("demo.add") ?? [];
    expect(ran).toHaveLength(1);
    expect(ran[0]! - sentAt).toBeGreaterThanOrEqual(2000);
    await new Promise((r) => setTimeout(r, 1000));
    expect(runs.get("demo.add")).toHaveLength(1);
  });

  it("a message naming an unregistered task ends FAILURE with 'not registered'; the worker keeps running", async () => {
    const { client, logs } = await setup();
    const ghost = await client.send("billing.no_such_task", [1]);
    await expect(ghost.get({ timeout: 5 })).rejects.toThrow(/not registered/);
    const state = await ghost.state();
    expect(state).toMatchObject({ state: "FAILURE", error: { code: "E_NOT_REGISTERED" } });
    // No task code ran, so no stack of the worker's own frames is shown to whoever reads the result.
    expect(state?.error?.stack).toBe('NotRegisteredError: task "billing.no_such_task" is not registered with this worker');
    expect(logs.some((l) => l.includes(`billing.no_such_task[${ghost.id}] failed`) && l.includes("not registered"))).toBe(true);
    const after = await client.send<number>("demo.add", [1, 1]);
    expect(await after.get({ timeout: 5 })).toBe(2);
  });

  it("task events of 3,000 tasks all reach the stream, each task's in order, in far fewer entries than events", async () => {
    const { worker, client, transport } = await setup({ concurrency: 50 });
    const registry = new TaskRegistry();
    for (const t of tasks) registry.register(t.name!, t as never, "test");
    const recorder = new ActivityRecorder({ workerId: worker.id, events: worker.events, transport, registry, logger: pino({ level: "silent" }), eventsMaxLen: 100_000 });
    cleanups.push(() => recorder.close());
    const ids: string[] = [];
    for (let i = 0; i < 3000; i += 250) {
      const refs = await Promise.all(Array.from({ length: 250 }, (_, k) => client.send("demo.add", [i + k, 1], { ignoreResult: true })));
      ids.push(...refs.map((r) => r.id));
    }
    const prefix = `wr${prefixSeq}:`;
    await waitFor("the queue to drain", async () => ((await transport.stats(["default"]))[0]?.ready === 0 && worker.info().active === 0) || undefined, 30_000);
    await recorder.flush();
    await recorder.flush();
    const events = (await transport.readEvents!(20_000)).map((e) => decodeEvent(e.data));
    const byTask = new Map<string, string[]>();
    for (const e of events) if (e) byTask.set(e.id, [...(byTask.get(e.id) ?? []), e.type]);
    expect(ids.filter((id) => byTask.get(id)?.join() !== "task-received,task-started,task-succeeded")).toEqual([]);
    // Batched: one stream entry per flush, not per event (9,000 events).
    const raw = new Redis(redis.url);
    cleanups.push(() => raw.quit());
    expect(await raw.xlen(`${prefix}events`)).toBeLessThan(300);
  }, 60_000);
});

/** A gate a test opens: `entered` resolves when the intercepted call reaches it. */
function gate(): { entered: Promise<void>; reach: () => void; open: () => void; opened: Promise<void> } {
  let reach!: () => void;
  let open!: () => void;
  const entered = new Promise<void>((r) => (reach = r));
  const opened = new Promise<void>((r) => (open = r));
  return { entered, reach, open, opened };
}

/**
 * A revoke reaches the worker on its control channel while its tasks arrive on another connection, so the
 * two can cross. Either way a task not yet started must end REVOKED without running.
 */
describe("revokes that cross a task on its way in", () => {
  it("revoked while its rate-limit check is in flight: REVOKED, never run", async () => {
    const g = gate();
    const { client, logs, transport } = await setup({}, (t) => {
      const check = t.rateLimit!.bind(t);
      t.rateLimit = async (name, intervalMs, taskId) => {
        const wait = await check(name, intervalMs, taskId);
        g.reach();
        await g.opened;
        return wait;
      };
    });
    runs.delete("demo.limited");
    const ref = await client.send("demo.limited");
    await g.entered;
    await transport.revoke([ref.id], 60_000, false);
    await waitFor("the worker to hear the revoke", () => (logs.some((l) => l.startsWith("revoke heard for 1 task")) ? true : undefined), 5000);
    g.open();
    await waitFor("the task to be REVOKED", async () => ((await ref.state())?.state === "REVOKED" ? true : undefined), 5000);
    expect(logs.some((l) => l.includes(`[${ref.id}] revoked while it waited for its rate limit; not run`))).toBe(true);
    // Another task of the same name still runs: the slot was freed.
    const after = await client.send<string>("demo.limited");
    expect(await after.get({ timeout: 5 })).toBe("ok");
    expect(runs.get("demo.limited")).toHaveLength(1);
  });

  it("revoked after the broker leased it, the revoke read before the reserve reply: REVOKED, never run", async () => {
    const g = gate();
    let target = "";
    const { client, logs, transport } = await setup({}, (t) => {
      const reserve = t.reserve.bind(t);
      t.reserve = async (req) => {
        const got = await reserve(req);
        if (target && got.some((r) => r.id === target)) {
          g.reach();
          await g.opened;
        }
        return got;
      };
    });
    runs.delete("demo.add");
    const id = "crossing-reserve-1";
    target = id;
    const ref = await client.send("demo.add", [1, 2], { id });
    await g.entered;
    await transport.revoke([id], 60_000, false);
    await waitFor("the worker to hear the revoke", () => (logs.some((l) => l.startsWith("revoke heard for 1 task")) ? true : undefined), 5000);
    g.open();
    await waitFor("the task to be REVOKED", async () => ((await ref.state())?.state === "REVOKED" ? true : undefined), 5000);
    expect(logs.some((l) => l.includes(`[${id}] revoked before it started; not run`))).toBe(true);
    expect(runs.get("demo.add")).toBeUndefined();
    expect(await (await client.send<number>("demo.add", [2, 2])).get({ timeout: 5 })).toBe(4);
  });
});

describe("a revoke remembered by the worker", () => {
  it("does not stop a task reserved after it, once the broker has let it expire (revoke --ttl)", async () => {
    const { client, logs, transport } = await setup();
    await transport.revoke(["re-sent-1"], 300, false);
    await waitFor("the worker to hear the revoke", () => (logs.some((l) => l.startsWith("revoke heard for 1 task")) ? true : undefined), 5000);
    await new Promise((r) => setTimeout(r, 500));
    const ref = await client.send<number>("demo.add", [2, 2], { id: "re-sent-1" });
    expect(await ref.get({ timeout: 5 })).toBe(4);
  });
});

describe("prefetch", () => {
  it("an undecodable message and an unregistered task reserved into the prefetch are dealt with at once, not when a slot frees", async () => {
    const { client, logs, transport } = await setup({ concurrency: 1, prefetch: 3 });
    cleanups.push(async () => releaseHold()); // so a failed assertion does not leave the worker's stop waiting
    runs.delete("demo.hold");
    const busy = await client.send<string>("demo.hold");
    await waitFor("the one slot to be taken", () => runs.get("demo.hold"), 5000);
    await transport.enqueue([{ id: "prefetch-poison-1", queue: "default", priority: 0, payload: "{not json" }]);
    const ghost = await client.send("billing.no_such_task", [1]);
    await waitFor("the undecodable message to be dead-lettered", async () => ((await transport.listDead("default")).some((d) => d.id === "prefetch-poison-1") ? true : undefined), 5000);
    await waitFor("the unregistered task to fail", async () => ((await ghost.state())?.state === "FAILURE" ? true : undefined), 5000);
    expect((await ghost.state())?.error).toMatchObject({ code: "E_NOT_REGISTERED" });
    expect(logs.some((l) => l.startsWith("task prefetch-poison-1 in queue default dead-lettered: undecodable message"))).toBe(true);
    // Both while the slot was still busy.
    expect((await busy.state())?.state).not.toBe("SUCCESS");
    releaseHold();
    expect(await busy.get({ timeout: 5 })).toBe("held");
  });
});

describe("kill -9", () => {
  const workers: CliProcess[] = [];
  afterEach(() => {
    for (const w of workers.splice(0)) w.signal("SIGKILL");
  });

  it("a worker SIGKILLed mid-run loses nothing: another worker finishes every task", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qworker-kill9-"));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const out = join(dir, "outcomes.log");
    const prefix = `k9${++prefixSeq}:`;
    const env = {
      QWORKER_BROKER_URL: redis.url,
      QWORKER_REDIS_PREFIX: prefix,
      QWORKER_TASKS_DIR: join(import.meta.dirname, "..", "fixtures", "tasks-slow"),
      QWORKER_CONCURRENCY: "3",
      QWORKER_LEASE_TIMEOUT: "3",
      QWORKER_HEARTBEAT_INTERVAL: "0.3",
      QWORKER_HEARTBEAT_TTL: "1.5",
      QWORKER_LOG_FORMAT: "json",
      QWORKER_TEST_OUT: out,
      QWORKER_TEST_SLOW_MS: "1500",
      QWORKER_HEALTH_DIR: dir,
    };
    const lines = () => {
      try {
        return readFileSync(out, "utf8").split("\n").filter(Boolean).map((l) => l.split(" ") as [string, string, string, string]);
      } catch {
        return [];
      }
    };

    const first = spawnCli(["worker"], { cwd: dir, env });
    workers.push(first);
    await first.waitForLine(/"tasks \(1\): slow\.record"/, 30_000);

    const transport = createRedisTransport(redis.url, { prefix, failFast: true });
    await transport.connect();
    cleanups.push(() => transport.close());
    const client = await createClient({ transport });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await client.send("slow.record", [`job-${i}`])).id);

    // Kill the first worker once it is in the middle of three tasks.
    await waitFor("three tasks started on the first worker", () => (lines().filter(([e, , , pid]) => e === "start" && pid === String(first.pid)).length >= 3 ? true : undefined), 10_000);
    first.signal("SIGKILL");
    expect(await first.exited).toBe("SIGKILL");
    const killedMidRun = lines().filter(([e, , , pid]) => e === "start" && pid === String(first.pid)).map(([, id]) => id);
    const finishedByFirst = new Set(lines().filter(([e, , , pid]) => e === "done" && pid === String(first.pid)).map(([, id]) => id));

    const second = spawnCli(["worker"], { cwd: dir, env });
    workers.push(second);
    const done = await waitFor(
      "every task to finish",
      () => {
        const ids_ = new Set(lines().filter(([e]) => e === "done").map(([, id]) => id));
        return ids.every((id) => ids_.has(id)) ? ids_ : undefined;
      },
      25_000,
      100,
    );
    expect([...done].sort()).toEqual([...ids].sort());
    for (const id of ids) expect(await client.ref(id).get({ timeout: 5 })).toMatch(/^job-\d$/);
    // Each task interrupted by the kill was delivered again, to the second worker.
    const interrupted = killedMidRun.filter((id) => !finishedByFirst.has(id));
    expect(interrupted.length).toBeGreaterThanOrEqual(1);
    for (const id of interrupted) {
      expect(lines().some(([e, i, deliveries, pid]) => e === "done" && i === id && pid === String(second.pid) && Number(deliveries) >= 2)).toBe(true);
    }
    // Only a task the first worker finished but had not yet acked may run twice (at-least-once); no other.
    const doneCount = new Map<string, number>();
    for (const [e, id] of lines()) if (e === "done") doneCount.set(id, (doneCount.get(id) ?? 0) + 1);
    for (const [id, n] of doneCount) if (!finishedByFirst.has(id)) expect(n, id).toBe(1);
    expect((await transport.stats(["default"]))[0]).toMatchObject({ ready: 0, delayed: 0, active: 0, dead: 0 });
    expect(jsonLogs(second.stderr()).some((l) => /recovered \d+ task/.test(l.msg ?? ""))).toBe(true);

    second.signal("SIGTERM");
    expect(await second.exited).toBe(0);
  }, 90_000);
});
