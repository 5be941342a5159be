/**
 * Transport conformance suite: every behaviour of the Transport contract (src/broker/transport.ts) that a
 * caller can observe, run against any implementation.
 *
 *   runConformanceSuite("sqlite", async () => ({ transport, cleanup }));
 *
 * `makeTransport` is called several times per file and must return a NEW transport (its own connection)
 * to the SAME store each time, made with the settings given (TransportSettings), so tests can play several processes; the suite calls `connect()` itself
 * and `cleanup()` (which must close the transport) in afterAll. Tests isolate themselves with fresh queue
 * names and task ids, so global views (stats(), workers(), listActive()) are filtered by those.
 * Timings use 150–400 ms leases and delays so the whole suite runs in a few seconds.
 */
import { randomUUID } from "node:crypto";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
  EnqueueItem,
  RecoverOptions,
  Reservation,
  ReserveRequest,
  SettleItem,
  Transport,
  WorkerInfo,
} from "../../../src/broker/transport.ts";
import { buildEnqueueItem } from "../../../src/client/build-message.ts";
import { configSchema } from "../../../src/config/schema.ts";
import { defineTask } from "../../../src/tasks/define.ts";
import { TaskRegistry } from "../../../src/tasks/registry.ts";
import { Worker } from "../../../src/worker/worker.ts";
import { eventLinesOf } from "../../support/event-lines.ts";

/** What a test may ask of a transport it opens; the factory passes it to the transport's constructor. */
export interface TransportSettings {
  /** The transport's result TTL (result_expires), in ms. */
  resultTtlMs?: number;
}

export type TransportFactory = (settings?: TransportSettings) => Promise<{ transport: Transport; cleanup: () => Promise<void> }>;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const uid = () => randomUUID().replaceAll("-", "").slice(0, 12);
const freshQueue = (label = "q") => `conf-${label}-${uid()}`;
const freshId = (label = "t") => `${label}-${uid()}`;

const RECOVER: RecoverOptions = { maxDeliveries: 5, heartbeatTtlMs: 60_000, deadMax: 10_000, deadTtlMs: 3_600_000 };

function item(queue: string, id = freshId(), extra: Partial<EnqueueItem> = {}): EnqueueItem {
  return { id, queue, priority: 0, payload: `payload:${id}`, ...extra };
}

function req(queue: string | string[], extra: Partial<ReserveRequest> = {}): ReserveRequest {
  return { queues: Array.isArray(queue) ? queue : [queue], max: 10, leaseMs: 30_000, workerId: "w-default", waitMs: 0, ...extra };
}

function done(r: Reservation, extra: Partial<SettleItem> = {}): SettleItem {
  return { id: r.id, token: r.token, queue: r.queue, outcome: "SUCCESS", resultTtlMs: 60_000, ...extra };
}

function workerInfo(id: string, extra: Partial<WorkerInfo> = {}): WorkerInfo {
  const now = Date.now();
  return {
    id,
    host: "conformance-host",
    pid: 4242,
    concurrency: 4,
    pool: "async",
    queues: ["default"],
    startedAt: now - 1000,
    lastBeat: now,
    processed: 7,
    failed: 1,
    active: 0,
    version: "0.0.0-test",
    ...extra,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function runConformanceSuite(name: string, makeTransport: TransportFactory): void {
  describe(`transport conformance: ${name}`, () => {
    const cleanups: (() => Promise<void>)[] = [];
    let t: Transport;
    let other: Transport;

    /** A further transport on the same store (a second "process"). */
    async function open(settings?: TransportSettings): Promise<Transport> {
      const { transport, cleanup } = await makeTransport(settings);
      cleanups.push(cleanup);
      await transport.connect();
      return transport;
    }

    /** Reserve everything currently ready in `queue`, `max` at a time, keeping the order. */
    async function drain(tr: Transport, queue: string, max = 1, workerId = "w-drain"): Promise<Reservation[]> {
      const out: Reservation[] = [];
      for (;;) {
        const got = await tr.reserve(req(queue, { max, workerId }));
        if (got.length === 0) return out;
        out.push(...got);
      }
    }

    beforeAll(async () => {
      t = await open();
      other = await open();
    });

    afterAll(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });

    describe("enqueue, reserve, settle", () => {
      it("enqueue reports each item as new, in order", async () => {
        const q = freshQueue();
        const items = [item(q), item(q), item(q)];
        const res = await t.enqueue(items);
        expect(res).toEqual(items.map((i) => ({ id: i.id, duplicate: false })));
      });

      it("reserve leases a task under a token with deliveries 1; settle removes it", async () => {
        const q = freshQueue();
        const it1 = item(q, freshId(), { payload: 'opaque ☃ {"not": json' });
        await t.enqueue([it1]);
        const before = Date.now();
        const got = await t.reserve(req(q, { leaseMs: 5000, workerId: "w-basic" }));
        const after = Date.now();
        expect(got).toHaveLength(1);
        const r = got[0]!;
        expect(r.id).toBe(it1.id);
        expect(r.queue).toBe(q);
        expect(r.payload).toBe(it1.payload);
        expect(typeof r.token).toBe("string");
        expect(r.token.length).toBeGreaterThan(0);
        expect(r.deliveries).toBe(1);
        expect(r.leaseUntil).toBeGreaterThanOrEqual(before + 5000 - 1000);
        expect(r.leaseUntil).toBeLessThanOrEqual(after + 5000 + 1000);

        const active = (await t.listActive(10_000)).find((a) => a.id === r.id);
        expect(active).toMatchObject({ id: r.id, queue: q, payload: it1.payload, workerId: "w-basic", deliveries: 1 });

        expect(await t.reserve(req(q))).toEqual([]);
        expect(await t.settle([done(r)])).toEqual([r.id]);
        expect(await t.reserve(req(q))).toEqual([]);
        expect((await t.listActive(10_000)).some((a) => a.id === r.id)).toBe(false);
        expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 0, active: 0, dead: 0 }]);
        // Unfiltered, a drained queue is still listed (at 0), not forgotten once its last task settles.
        expect((await t.stats()).find((c) => c.name === q)).toEqual({ name: q, ready: 0, delayed: 0, active: 0, dead: 0 });
        // A queue that only ever got duplicates (the id is still queued in q) is not listed.
        const onlyDup = freshQueue();
        expect(await t.enqueue([{ ...item(q), id: r.id }])).toEqual([{ id: r.id, duplicate: false }]);
        expect((await t.enqueue([{ ...item(onlyDup), id: r.id }]))[0]!.duplicate).toBe(true);
        expect((await t.stats()).some((c) => c.name === onlyDup)).toBe(false);
      });

      it("reserve returns at most max", async () => {
        const q = freshQueue();
        await t.enqueue([item(q), item(q), item(q), item(q), item(q)]);
        const first = await t.reserve(req(q, { max: 2 }));
        expect(first).toHaveLength(2);
        const second = await t.reserve(req(q, { max: 10 }));
        expect(second).toHaveLength(3);
        expect(new Set([...first, ...second].map((r) => r.id)).size).toBe(5);
        expect(new Set([...first, ...second].map((r) => r.token)).size).toBe(5);
      });

      it("settle with a wrong token is refused and leaves the lease alone", async () => {
        const q = freshQueue();
        await t.enqueue([item(q)]);
        const [r] = await t.reserve(req(q));
        expect(await t.settle([done(r!, { token: "not-the-token" })])).toEqual([]);
        expect((await t.stats([q]))[0]).toMatchObject({ active: 1 });
        expect(await t.settle([done(r!)])).toEqual([r!.id]);
        // a second settle with the same token is refused too: the task is gone
        expect(await t.settle([done(r!)])).toEqual([]);
      });

      it("reserve with waitMs 0 on an empty queue returns at once", async () => {
        const start = Date.now();
        expect(await t.reserve(req(freshQueue()))).toEqual([]);
        expect(Date.now() - start).toBeLessThan(250);
      });

      it("reserve over several queues takes from each of them", async () => {
        const q1 = freshQueue("a");
        const q2 = freshQueue("b");
        await t.enqueue([item(q1), item(q2)]);
        const got = await t.reserve(req([q1, q2], { max: 10 }));
        expect(got.map((r) => r.queue).sort()).toEqual([q1, q2].sort());
      });
    });

    describe("leases and recovery", () => {
      it("an expired lease is recovered: redelivered with deliveries+1 and a new token; the old token is dead", async () => {
        const q = freshQueue();
        await t.heartbeat(workerInfo("w-expire"), 60_000);
        await t.enqueue([item(q)]);
        const [first] = await t.reserve(req(q, { leaseMs: 200, workerId: "w-expire" }));
        expect(first).toBeDefined();
        // not recovered while the lease holds
        await t.recover(RECOVER);
        expect(await t.reserve(req(q))).toEqual([]);

        await sleep(300);
        const report = await t.recover(RECOVER);
        expect(report.recovered).toBeGreaterThanOrEqual(1);
        const [second] = await t.reserve(req(q, { leaseMs: 5000, workerId: "w-expire" }));
        expect(second?.id).toBe(first!.id);
        expect(second!.deliveries).toBe(2);
        expect(second!.token).not.toBe(first!.token);

        expect(await t.settle([done(first!)])).toEqual([]);
        expect(await t.extendLeases([{ id: first!.id, token: first!.token, queue: q }], 5000)).toEqual([first!.id]);
        expect(await t.retry({ id: first!.id, token: first!.token, queue: q, priority: 0, payload: "x", dueAt: Date.now() })).toBe(false);
        await t.release([{ id: first!.id, token: first!.token, queue: q }]);
        await t.deadLetter([{ id: first!.id, token: first!.token, queue: q, reason: "stale" }]);
        // none of that touched the current lease
        expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 0, active: 1, dead: 0 }]);
        expect(await t.settle([done(second!)])).toEqual([second!.id]);
      });

      it("extendLeases keeps a task from being recovered", async () => {
        const q = freshQueue();
        await t.heartbeat(workerInfo("w-extend"), 60_000);
        await t.enqueue([item(q)]);
        const [r] = await t.reserve(req(q, { leaseMs: 250, workerId: "w-extend" }));
        await sleep(120);
        expect(await t.extendLeases([{ id: r!.id, token: r!.token, queue: q }], 1000)).toEqual([]);
        await sleep(250); // past the original lease, inside the extended one
        await t.recover(RECOVER);
        expect(await t.reserve(req(q))).toEqual([]);
        const active = (await t.listActive(10_000)).find((a) => a.id === r!.id);
        expect(active).toBeDefined();
        expect(active!.leaseUntil).toBeGreaterThan(Date.now());
        expect(await t.settle([done(r!)])).toEqual([r!.id]);
      });

      it("extendWorkerLeases renews exactly the leases the broker holds for that worker", async () => {
        const q = freshQueue();
        const me = `w-all-${uid()}`;
        const other = `w-other-${uid()}`;
        await t.heartbeat(workerInfo(me), 60_000);
        await t.heartbeat(workerInfo(other), 60_000);
        await t.enqueue([item(q), item(q), item(q), item(q)]);
        const mine = await t.reserve(req(q, { max: 3, leaseMs: 250, workerId: me }));
        const theirs = await t.reserve(req(q, { max: 1, leaseMs: 250, workerId: other }));
        expect(mine).toHaveLength(3);
        // One settled, one handed back: neither is this worker's lease any more.
        expect(await t.settle([done(mine[0]!)])).toEqual([mine[0]!.id]);
        await t.release([mine[1]!]);
        await sleep(120);
        expect(await t.extendWorkerLeases(me, 1000)).toEqual([mine[2]!.id]);
        await sleep(250); // past the original leases, inside the renewed one
        await t.recover(RECOVER);
        const active = await t.listActive(10_000);
        expect(active.find((a) => a.id === mine[2]!.id)?.leaseUntil).toBeGreaterThan(Date.now());
        // The other worker's lease was not renewed: it lapsed and its task went back to the queue.
        expect(active.some((a) => a.id === theirs[0]!.id)).toBe(false);
        const again = await t.reserve(req(q, { max: 10, workerId: other }));
        expect(again.map((r) => r.id).sort()).toEqual([mine[1]!.id, theirs[0]!.id].sort());
        // Recovered from this worker: no longer renewed, no longer reported.
        expect(await t.extendWorkerLeases(other, 1000)).toEqual(expect.arrayContaining([mine[1]!.id, theirs[0]!.id]));
        expect(await t.extendWorkerLeases(`w-nobody-${uid()}`, 1000)).toEqual([]);
        expect(await t.settle([done(mine[2]!), ...again.map((r) => done(r))])).toHaveLength(3);
      });

      it("a dead worker's tasks are recovered before their lease expires; a live worker's are not", async () => {
        const q = freshQueue();
        await t.heartbeat(workerInfo("w-dies"), 60_000);
        await t.enqueue([item(q, freshId("dies")), item(q, freshId("lives"))]);
        const [dying] = await t.reserve(req(q, { max: 1, leaseMs: 60_000, workerId: "w-dies" }));
        const [living] = await t.reserve(req(q, { max: 1, leaseMs: 60_000, workerId: "w-lives" }));
        // Swept every 50 ms meanwhile, as live workers do (a gap in the sweeps would hold judgement back).
        let recovered = 0;
        for (let i = 0; i < 6; i++) {
          recovered += (await t.recover({ ...RECOVER, heartbeatTtlMs: 200 })).recovered;
          await sleep(50);
        }
        await t.heartbeat(workerInfo("w-lives"), 60_000);
        recovered += (await t.recover({ ...RECOVER, heartbeatTtlMs: 200 })).recovered;
        expect(recovered).toBeGreaterThanOrEqual(1);
        const again = await t.reserve(req(q, { workerId: "w-other" }));
        expect(again.map((r) => r.id)).toEqual([dying!.id]);
        expect(again[0]!.deliveries).toBe(2);
        expect(await t.settle([done(dying!)])).toEqual([]);
        expect(await t.settle([done(living!)])).toEqual([living!.id]);
        expect(await t.settle([done(again[0]!)])).toEqual([again[0]!.id]);
      });

      it("after a gap in the recovery sweeps (Redis frozen, the machine paused) a live worker gets one heartbeat TTL to beat again", async () => {
        const q = freshQueue();
        const opts = { ...RECOVER, heartbeatTtlMs: 400 };
        const w = `w-frozen-${uid()}`;
        await t.recover(opts);
        await t.heartbeat(workerInfo(w), 60_000);
        await t.enqueue([item(q)]);
        const [leased] = await t.reserve(req(q, { max: 1, leaseMs: 60_000, workerId: w }));
        // Nobody sweeps for 700 ms: the heartbeat is older than its TTL when the sweeps resume.
        await sleep(700);
        expect((await t.recover(opts)).recovered).toBe(0);
        await sleep(150);
        expect((await t.recover(opts)).recovered).toBe(0);
        // It never beats again: once the TTL has passed since the gap, it is judged dead.
        let recovered = 0;
        const deadline = Date.now() + 3000;
        while (recovered === 0 && Date.now() < deadline) {
          await sleep(50);
          recovered = (await t.recover(opts)).recovered;
        }
        expect(recovered).toBe(1);
        // Its lease went with it: its late outcome is refused (settle answers with the ids it settled).
        expect(await t.settle([done(leased!)])).toEqual([]);
      });

      it("past maxDeliveries a task is dead-lettered with a reason instead of put back", async () => {
        const q = freshQueue();
        await t.heartbeat(workerInfo("w-maxdel"), 60_000);
        const it1 = item(q);
        await t.enqueue([it1]);
        const opts = { ...RECOVER, maxDeliveries: 2 };

        const [d1] = await t.reserve(req(q, { leaseMs: 150, workerId: "w-maxdel" }));
        expect(d1!.deliveries).toBe(1);
        await sleep(220);
        await t.recover(opts);
        const [d2] = await t.reserve(req(q, { leaseMs: 150, workerId: "w-maxdel" }));
        expect(d2?.id).toBe(it1.id);
        expect(d2!.deliveries).toBe(2);
        await sleep(220);
        const report = await t.recover(opts);
        expect(report.deadLettered).toBeGreaterThanOrEqual(1);
        expect(await t.reserve(req(q))).toEqual([]);
        const dead = await t.listDead(q);
        expect(dead).toHaveLength(1);
        expect(dead[0]).toMatchObject({ id: it1.id, queue: q, payload: it1.payload, deliveries: 2 });
        expect(typeof dead[0]!.reason).toBe("string");
        expect(dead[0]!.reason.length).toBeGreaterThan(0);
        // The task never finished, so there is no error to keep: the reason says what happened.
        expect(dead[0]!.error).toBeUndefined();
        expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 0, active: 0, dead: 1 }]);
        expect(await t.settle([done(d2!)])).toEqual([]);
      });

      it("release puts tasks back at the front without counting a delivery", async () => {
        const q = freshQueue();
        const [a, b, c] = [item(q, freshId("a")), item(q, freshId("b")), item(q, freshId("c"))];
        await t.enqueue([a, b, c]);
        const prefetched = await t.reserve(req(q, { max: 2 }));
        expect(prefetched.map((r) => r.id)).toEqual([a.id, b.id]);
        await t.release(prefetched.map((r) => ({ id: r.id, token: r.token, queue: q })));
        expect(await t.stats([q])).toEqual([{ name: q, ready: 3, delayed: 0, active: 0, dead: 0 }]);
        const again = await drain(t, q);
        expect(again.map((r) => r.id).slice(0, 2).sort()).toEqual([a.id, b.id].sort());
        expect(again[2]?.id).toBe(c.id);
        expect(again.map((r) => r.deliveries)).toEqual([1, 1, 1]);
        // the released tokens are no longer valid
        expect(await t.settle(prefetched.map((r) => done(r)))).toEqual([]);
      });
    });

    describe("retries, delays, priorities", () => {
      it("retry with a delay: not reservable before dueAt, reservable after, with the new payload", async () => {
        const q = freshQueue();
        await t.enqueue([item(q)]);
        const [r] = await t.reserve(req(q));
        const dueAt = Date.now() + 300;
        expect(await t.retry({ id: r!.id, token: r!.token, queue: q, priority: 3, payload: "retry-payload", dueAt })).toBe(true);
        expect(await t.reserve(req(q))).toEqual([]);
        expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 1, active: 0, dead: 0 }]);
        const sched = (await t.listScheduled(10_000)).find((s) => s.id === r!.id);
        expect(sched).toMatchObject({ id: r!.id, queue: q, payload: "retry-payload", dueAt });
        // the old token is spent
        expect(await t.settle([done(r!)])).toEqual([]);

        await sleep(400);
        await t.recover(RECOVER);
        const [again] = await t.reserve(req(q));
        expect(again?.id).toBe(r!.id);
        expect(again!.payload).toBe("retry-payload");
        // a retry is a new run, not a crash
        expect(again!.deliveries).toBe(1);
        expect(await t.settle([done(again!)])).toEqual([again!.id]);
      });

      it("retry with dueAt now is reservable at once", async () => {
        const q = freshQueue();
        await t.enqueue([item(q)]);
        const [r] = await t.reserve(req(q));
        expect(await t.retry({ id: r!.id, token: r!.token, queue: q, priority: 0, payload: "p2", dueAt: Date.now() })).toBe(true);
        const [again] = await t.reserve(req(q));
        expect(again).toMatchObject({ id: r!.id, payload: "p2" });
      });

      it("delayed tasks wait in the broker until due", async () => {
        const q = freshQueue();
        const dueAt = Date.now() + 300;
        const later = item(q, freshId("later"), { dueAt });
        const past = item(q, freshId("past"), { dueAt: Date.now() - 1000 });
        await t.enqueue([later, past]);
        expect(await t.stats([q])).toEqual([{ name: q, ready: 1, delayed: 1, active: 0, dead: 0 }]);
        expect((await t.listScheduled(10_000)).find((s) => s.id === later.id)).toMatchObject({ queue: q, payload: later.payload, dueAt });
        expect((await t.reserve(req(q))).map((r) => r.id)).toEqual([past.id]);
        expect(await t.reserve(req(q))).toEqual([]);

        await sleep(400);
        // recover (or a reserve) promotes it; either may do it, so only the outcome is checked
        await t.recover(RECOVER);
        const got = await t.reserve(req(q));
        expect(got.map((r) => r.id)).toEqual([later.id]);
        expect((await t.listScheduled(10_000)).some((s) => s.id === later.id)).toBe(false);
      });

      it("higher priority first, FIFO within a priority", async () => {
        const q = freshQueue();
        const prios = [0, 5, 9, 5, 0, 9, 1];
        const items = prios.map((p, i) => item(q, freshId(`p${p}-${i}`), { priority: p }));
        await t.enqueue(items);
        const got = await drain(t, q, 1);
        const expected = [...items].map((x, i) => ({ x, i })).sort((a, b) => b.x.priority - a.x.priority || a.i - b.i).map((e) => e.x.id);
        expect(got.map((r) => r.id)).toEqual(expected);
      });

      it("FIFO over many tasks and batches", async () => {
        const q = freshQueue();
        const items = Array.from({ length: 40 }, (_, i) => item(q, freshId(`f${i}`), { priority: 4 }));
        await t.enqueue(items.slice(0, 20));
        await t.enqueue(items.slice(20));
        const got = await drain(t, q, 7);
        expect(got.map((r) => r.id)).toEqual(items.map((i) => i.id));
      });

      it("one large enqueue call mixing queues, priorities and due times keeps each queue's order", async () => {
        const qa = freshQueue("a");
        const qb = freshQueue("b");
        const later = Date.now() + 60_000;
        // 3000 tasks: past the Redis script's variadic chunk, interleaved across two queues.
        const items = Array.from({ length: 3000 }, (_, i) =>
          item(i % 2 === 0 ? qa : qb, freshId(`m${i}`), { priority: i % 3 === 0 ? 7 : 2, ...(i % 10 === 9 ? { dueAt: later } : {}) }),
        );
        const res = await t.enqueue(items);
        expect(res.every((r) => !r.duplicate)).toBe(true);
        for (const q of [qa, qb]) {
          const mine = items.map((x, i) => ({ x, i })).filter((e) => e.x.queue === q && e.x.dueAt === undefined);
          const expected = mine.sort((a, b) => b.x.priority - a.x.priority || a.i - b.i).map((e) => e.x.id);
          const got = await drain(t, q, 500);
          expect(got.map((r) => r.id)).toEqual(expected);
          const counts = (await t.stats([q]))[0]!;
          expect(counts.delayed).toBe(items.filter((x) => x.queue === q && x.dueAt !== undefined).length);
        }
      });
    });

    describe("dead letters", () => {
      it("deadLetter keeps reason and error; requeueDead puts the task back", async () => {
        const q = freshQueue();
        const it1 = item(q);
        await t.enqueue([it1]);
        const [r] = await t.reserve(req(q));
        await t.deadLetter([{ id: r!.id, token: r!.token, queue: q, reason: "poisoned payload", error: "MessageError: bad" }]);
        expect(await t.reserve(req(q))).toEqual([]);
        const dead = await t.listDead(q);
        expect(dead).toHaveLength(1);
        expect(dead[0]).toMatchObject({ id: it1.id, queue: q, payload: it1.payload, reason: "poisoned payload", error: "MessageError: bad" });
        expect(Math.abs(dead[0]!.deadAt - Date.now())).toBeLessThan(5000);
        expect((await t.listDead(undefined, 10_000)).some((d) => d.id === it1.id)).toBe(true);
        expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 0, active: 0, dead: 1 }]);
        // the token is spent
        expect(await t.settle([done(r!)])).toEqual([]);

        expect(await t.requeueDead([it1.id])).toBe(1);
        expect(await t.listDead(q)).toEqual([]);
        const [again] = await t.reserve(req(q));
        expect(again).toMatchObject({ id: it1.id, payload: it1.payload, deliveries: 1 });
      });

      it("settle with deadReason stores the result and dead-letters the task", async () => {
        const q = freshQueue();
        await t.enqueue([item(q)]);
        const [r] = await t.reserve(req(q));
        expect(await t.settle([done(r!, { outcome: "FAILURE", result: '{"state":"FAILURE"}', deadReason: "retries exhausted" })])).toEqual([
          r!.id,
        ]);
        expect(await t.getResult(r!.id)).toBe('{"state":"FAILURE"}');
        const dead = await t.listDead(q);
        expect(dead.map((d) => [d.id, d.reason])).toEqual([[r!.id, "retries exhausted"]]);
      });

      it("settle with deadReason keeps deadError with the dead task; a later death without one shows none", async () => {
        const q = freshQueue();
        const [a, b] = [item(q, freshId("a")), item(q, freshId("b"))];
        await t.enqueue([a, b]);
        const [ra, rb] = await t.reserve(req(q));
        expect(
          await t.settle([
            done(ra!, { outcome: "FAILURE", result: '{"state":"FAILURE"}', deadReason: "failed: bad input 7", deadError: "TypeError: bad input 7" }),
            done(rb!, { outcome: "FAILURE", deadReason: "failed: gave up" }),
          ]),
        ).toEqual([a.id, b.id]);
        const byId = new Map((await t.listDead(q)).map((d) => [d.id, d]));
        expect(byId.get(a.id)).toMatchObject({ reason: "failed: bad input 7", error: "TypeError: bad input 7" });
        expect(byId.get(b.id)?.reason).toBe("failed: gave up");
        expect(byId.get(b.id)?.error).toBeUndefined();

        // Requeued, then dead again without an error: the first death's error must not show up.
        expect(await t.requeueDead([a.id])).toBe(1);
        const [again] = await t.reserve(req(q));
        expect(again?.id).toBe(a.id);
        expect(await t.settle([done(again!, { outcome: "FAILURE", deadReason: "failed: other" })])).toEqual([a.id]);
        const [dead] = await t.listDead(q).then((ds) => ds.filter((d) => d.id === a.id));
        expect(dead?.reason).toBe("failed: other");
        expect(dead?.error).toBeUndefined();
      });

      it("an id found only in the dead-letter set is queued afresh when sent again, and leaves the set", async () => {
        const q = freshQueue();
        const first = item(q, freshId("again"));
        await t.enqueue([first]);
        const [r] = await t.reserve(req(q));
        await t.settle([done(r!, { outcome: "FAILURE", result: '{"state":"FAILURE"}', deadReason: "failed: first try" })]);
        expect((await t.listDead(q)).map((d) => d.id)).toEqual([first.id]);
        expect(await t.getResult(first.id)).toBe('{"state":"FAILURE"}');
        // Queued (not dead, not running): a duplicate. Dead: a new task, whose waiter must not see the old failure.
        expect(await t.enqueue([item(q, first.id)])).toEqual([{ id: first.id, duplicate: false }]);
        expect(await t.listDead(q)).toEqual([]);
        expect(await t.getResult(first.id)).toBeNull();
        expect(await t.enqueue([item(q, first.id)])).toEqual([{ id: first.id, duplicate: true }]);
        const [again] = await t.reserve(req(q));
        expect(again).toMatchObject({ id: first.id, deliveries: 1 });
        expect(await t.settle([done(again!, { result: '{"state":"SUCCESS"}' })])).toEqual([first.id]);
        expect(await t.getResult(first.id)).toBe('{"state":"SUCCESS"}');
        // Finished and gone: sending the id once more is a new run, and the old success goes too.
        expect(await t.enqueue([item(q, first.id)])).toEqual([{ id: first.id, duplicate: false }]);
        expect(await t.getResult(first.id)).toBeNull();
      });

      it("requeueDead drops the dead task's failure result, so a waiter sees the new run", async () => {
        const q = freshQueue();
        const it1 = item(q);
        await t.enqueue([it1]);
        const [r] = await t.reserve(req(q));
        await t.settle([done(r!, { outcome: "FAILURE", result: '{"state":"FAILURE"}', deadReason: "retries exhausted" })]);
        expect(await t.getResult(it1.id)).toBe('{"state":"FAILURE"}');
        expect(await t.requeueDead([it1.id])).toBe(1);
        expect(await t.getResult(it1.id)).toBeNull();
      });

      it("requeueDead('all', queue) touches only that queue", async () => {
        const q1 = freshQueue("a");
        const q2 = freshQueue("b");
        await t.enqueue([item(q1), item(q1), item(q2)]);
        for (const q of [q1, q2]) {
          const rs = await t.reserve(req(q));
          await t.deadLetter(rs.map((r) => ({ id: r.id, token: r.token, queue: q, reason: "x" })));
        }
        expect(await t.requeueDead("all", q1)).toBe(2);
        expect(await t.listDead(q1)).toEqual([]);
        expect(await t.listDead(q2)).toHaveLength(1);
        expect(await t.stats([q1, q2])).toEqual([
          { name: q1, ready: 2, delayed: 0, active: 0, dead: 0 },
          { name: q2, ready: 0, delayed: 0, active: 0, dead: 1 },
        ]);
        expect(await t.requeueDead(["no-such-id"])).toBe(0);
      });

      it("recover bounds the dead-letter set by deadMax (newest kept) and deadTtlMs", async () => {
        const q = freshQueue();
        const ids: string[] = [];
        for (let i = 0; i < 5; i++) {
          const it1 = item(q, freshId(`d${i}`));
          ids.push(it1.id);
          await t.enqueue([it1]);
          const [r] = await t.reserve(req(q));
          await t.deadLetter([{ id: r!.id, token: r!.token, queue: q, reason: `n${i}` }]);
          await sleep(5);
        }
        expect(await t.listDead(q)).toHaveLength(5);
        await t.recover({ ...RECOVER, deadMax: 2 });
        expect((await t.listDead(q)).map((d) => d.id).sort()).toEqual(ids.slice(3).sort());

        const q2 = freshQueue();
        await t.enqueue([item(q2)]);
        const [r2] = await t.reserve(req(q2));
        await t.deadLetter([{ id: r2!.id, token: r2!.token, queue: q2, reason: "old" }]);
        await t.recover({ ...RECOVER, deadTtlMs: 60_000 });
        expect(await t.listDead(q2)).toHaveLength(1);
        await sleep(200);
        await t.recover({ ...RECOVER, deadTtlMs: 100 });
        expect(await t.listDead(q2)).toEqual([]);
      });

      it("purge removes ready and delayed tasks, and the dead-letter set only when asked", async () => {
        const q = freshQueue();
        await t.enqueue([item(q), item(q), item(q), item(q, freshId(), { dueAt: Date.now() + 60_000 })]);
        const [running] = await t.reserve(req(q, { max: 1 }));
        const [toDie] = await t.reserve(req(q, { max: 1 }));
        await t.deadLetter([{ id: toDie!.id, token: toDie!.token, queue: q, reason: "x" }]);
        expect(await t.stats([q])).toEqual([{ name: q, ready: 1, delayed: 1, active: 1, dead: 1 }]);

        expect(await t.purge(q, { dead: false })).toBe(2);
        expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 0, active: 1, dead: 1 }]);
        expect(await t.purge(q, { dead: true })).toBe(1);
        expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 0, active: 1, dead: 0 }]);
        expect(await t.settle([done(running!)])).toEqual([running!.id]);
      });

      it("purge empties a large queue, ready and delayed, tasks and their data", async () => {
        const q = freshQueue();
        const ids: string[] = [];
        for (let b = 0; b < 12; b++) {
          const batch = Array.from({ length: 1000 }, (_, i) => item(q, freshId(), i % 4 === 0 ? { dueAt: Date.now() + 60_000 } : {}));
          ids.push(...batch.map((it) => it.id));
          await t.enqueue(batch);
        }
        await t.enqueue([item(q, freshId(), { dueAt: Date.now() + 60_000 })]);
        expect(await t.purge(q, { dead: false })).toBe(12_001);
        expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 0, active: 0, dead: 0 }]);
        // The tasks' data went too: the same ids can be sent again, as new tasks.
        expect(await t.enqueue([item(q, ids[0]!), item(q, ids[11_999]!)])).toEqual([
          { id: ids[0], duplicate: false },
          { id: ids[11_999], duplicate: false },
        ]);
      });
    });

    describe("results", () => {
      it("a settled result can be read; no result is stored when none is given", async () => {
        const q = freshQueue();
        await t.enqueue([item(q), item(q)]);
        const [a, b] = await t.reserve(req(q));
        await t.settle([done(a!, { result: '{"state":"SUCCESS","value":42}' }), done(b!)]);
        expect(await t.getResult(a!.id)).toBe('{"state":"SUCCESS","value":42}');
        expect(await other.getResult(a!.id)).toBe('{"state":"SUCCESS","value":42}');
        expect(await t.getResult(b!.id)).toBeNull();
        expect(await t.getResult("never-existed-" + uid())).toBeNull();
      });

      it("results expire after their TTL", async () => {
        const q = freshQueue();
        await t.enqueue([item(q)]);
        const [r] = await t.reserve(req(q));
        await t.settle([done(r!, { result: "short-lived", resultTtlMs: 200 })]);
        expect(await t.getResult(r!.id)).toBe("short-lived");
        await sleep(350);
        await t.recover(RECOVER);
        expect(await t.getResult(r!.id)).toBeNull();
      });

      it("waitForResult resolves at once when the result already exists", async () => {
        const q = freshQueue();
        await t.enqueue([item(q)]);
        const [r] = await t.reserve(req(q));
        await t.settle([done(r!, { result: "early" })]);
        const start = Date.now();
        expect(await other.waitForResult(r!.id, 3000)).toBe("early");
        expect(Date.now() - start).toBeLessThan(500);
      });

      it("waitForResult resolves when the result is stored later by another connection", async () => {
        const q = freshQueue();
        const it1 = item(q);
        await other.enqueue([it1]);
        const start = Date.now();
        const waiting = t.waitForResult(it1.id, 5000);
        await sleep(150);
        const [r] = await other.reserve(req(q));
        await other.settle([done(r!, { result: "late" })]);
        const storedAt = Date.now();
        expect(await waiting).toBe("late");
        const end = Date.now();
        expect(end - start).toBeGreaterThanOrEqual(140);
        expect(end - storedAt).toBeLessThan(1000);
      });

      it("waitForResult resolves with null on timeout", async () => {
        const start = Date.now();
        expect(await t.waitForResult("nobody-" + uid(), 250)).toBeNull();
        const elapsed = Date.now() - start;
        expect(elapsed).toBeGreaterThanOrEqual(240);
        expect(elapsed).toBeLessThan(2000);
      });
    });

    describe("revoke", () => {
      it("a revoked queued task is never reserved and shows state REVOKED", async () => {
        const q = freshQueue();
        const victim = item(q, freshId("victim"));
        const keeper = item(q, freshId("keeper"));
        await t.enqueue([victim, keeper]);
        await t.revoke([victim.id], 60_000, false);
        const got = await drain(other, q, 10);
        expect(got.map((r) => r.id)).toEqual([keeper.id]);
        const stored = await t.getResult(victim.id);
        expect(stored).not.toBeNull();
        expect(JSON.parse(stored!)).toMatchObject({ state: "REVOKED" });
        expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 0, active: 1, dead: 0 }]);
      });

      it("a revoked waiting task stores the same record on every broker: id, state, task (from its message), queue, finishedAt", async () => {
        const q = freshQueue();
        const send = (task: string, args: unknown[], options = {}) => buildEnqueueItem(task, args, options, { queue: q, maxPayloadBytes: 1 << 20 });
        const ready = send("conf.invoice", [1234]);
        const delayed = send("conf.report", ["monthly"], { countdown: 60 });
        // Not a qworker message, and one too large to be read for its name: both stored without a task.
        const opaque = item(q, freshId("opaque"));
        const large = send("conf.large", ["x".repeat(70_000)]);
        // Revoked before it is sent: finished by reserve instead, with the same record.
        const late = send("conf.late", []);
        await t.revoke([late.id], 60_000, false);
        await t.enqueue([ready, delayed, opaque, large]);
        const before = Date.now();
        await t.revoke([ready.id, delayed.id, opaque.id, large.id], 60_000, false);
        await t.enqueue([late]);
        expect(await drain(other, q, 10)).toEqual([]);
        const after = Date.now();
        const record = async (id: string) => JSON.parse((await t.getResult(id))!) as Record<string, unknown>;
        const expected = (id: string, task?: string) => ({ id, state: "REVOKED", ...(task ? { task } : {}), queue: q, finishedAt: expect.any(Number) });
        expect(await record(ready.id)).toEqual(expected(ready.id, "conf.invoice"));
        expect(await record(delayed.id)).toEqual(expected(delayed.id, "conf.report"));
        expect(await record(opaque.id)).toEqual(expected(opaque.id));
        expect(await record(large.id)).toEqual(expected(large.id));
        expect(await record(late.id)).toEqual(expected(late.id, "conf.late"));
        // Keys in one order too, so `qworker result --json` prints the same on either broker.
        expect(Object.keys(await record(ready.id))).toEqual(["id", "state", "task", "queue", "finishedAt"]);
        expect(Object.keys(await record(opaque.id))).toEqual(["id", "state", "queue", "finishedAt"]);
        for (const id of [ready.id, late.id]) {
          const at = (await record(id)).finishedAt as number;
          expect(at).toBeGreaterThanOrEqual(before - 1000);
          expect(at).toBeLessThanOrEqual(after + 1000);
        }
      });

      it("a revoked waiting task's REVOKED result lives for the transport's result TTL, not the revoke's, whichever path stores it", async () => {
        const RESULT_TTL_MS = 1000;
        const short = await open({ resultTtlMs: RESULT_TTL_MS });
        const q = freshQueue();
        // Revoked while queued: kept for ever, for an hour, for a moment; and one revoked before it is sent,
        // finished by a reserve that names no result TTL.
        const [forever, hour, brief, late] = [freshId("forever"), freshId("hour"), freshId("brief"), freshId("late")];
        await short.revoke([late], 3_600_000, false);
        await short.enqueue([item(q, forever), item(q, hour), item(q, brief)]);
        await short.revoke([forever], 0, false);
        await short.revoke([hour], 3_600_000, false);
        await short.revoke([brief], 200, false);
        await short.enqueue([item(q, late)]);
        expect(await short.reserve(req(q))).toEqual([]);
        const ids = [forever, hour, brief, late];
        for (const id of ids) expect(JSON.parse((await short.getResult(id))!)).toMatchObject({ id, state: "REVOKED" });
        await sleep(400);
        // Past the brief revoke's TTL, still within the result TTL.
        expect(JSON.parse((await short.getResult(brief))!)).toMatchObject({ state: "REVOKED" });
        await sleep(RESULT_TTL_MS);
        await short.recover(RECOVER);
        for (const id of ids) expect(await short.getResult(id)).toBeNull();
      });

      it("revoke is durable: a task enqueued (or due) after the revoke never starts", async () => {
        const q = freshQueue();
        const early = freshId("pre");
        const delayed = freshId("delayed");
        await t.revoke([early, delayed], 60_000, false);
        await t.enqueue([item(q, early), item(q, delayed, { dueAt: Date.now() + 150 })]);
        expect(await other.reserve(req(q))).toEqual([]);
        await sleep(250);
        await other.recover(RECOVER);
        expect(await other.reserve(req(q))).toEqual([]);
        expect(JSON.parse((await t.getResult(early))!)).toMatchObject({ state: "REVOKED" });
      });

      it("a revoke with a TTL of 0 or less holds for ever: a task sent under its id, at once or later, never starts", async () => {
        const q = freshQueue();
        const zero = freshId("zero");
        const negative = freshId("neg");
        await t.revoke([zero], 0, false);
        await t.revoke([negative], -1, true);
        await t.enqueue([item(q, zero)]);
        expect(await other.reserve(req(q))).toEqual([]);
        // Time passes and the sweeps that drop expired revokes run: still held.
        await sleep(300);
        await other.recover(RECOVER);
        await t.revoke([freshId("other")], 1, false);
        const spared = freshId("spared");
        await t.enqueue([item(q, zero), item(q, negative), item(q, spared)]);
        expect((await drain(other, q, 10)).map((r) => r.id)).toEqual([spared]);
        for (const id of [zero, negative]) expect(JSON.parse((await t.getResult(id))!)).toMatchObject({ state: "REVOKED" });
      });

      it("revoking an id again with a shorter TTL does not cut short the longer revoke, in either order", async () => {
        const q = freshQueue();
        const foreverFirst = freshId("forever-first");
        const briefFirst = freshId("brief-first");
        const termFirst = freshId("term-first");
        await t.revoke([foreverFirst], 0, false);
        await t.revoke([foreverFirst], 200, false);
        await t.revoke([briefFirst], 200, false);
        await t.revoke([briefFirst], 0, false);
        // A shorter terminating revoke after a longer plain one: the id stays revoked as long.
        await t.revoke([termFirst], 60_000, false);
        await t.revoke([termFirst], 200, true);
        await sleep(400);
        await other.recover(RECOVER);
        const spared = freshId("spared");
        await t.enqueue([item(q, foreverFirst), item(q, briefFirst), item(q, termFirst), item(q, spared)]);
        expect((await drain(other, q, 10)).map((r) => r.id)).toEqual([spared]);
        for (const id of [foreverFirst, briefFirst, termFirst]) expect(JSON.parse((await t.getResult(id))!)).toMatchObject({ state: "REVOKED" });
      });

      it("revoking a finished task leaves its result: a revoke stops only runs not yet started", async () => {
        const q = freshQueue();
        const finished = item(q, freshId("finished"));
        const running = item(q, freshId("running"));
        await t.enqueue([finished, running]);
        const [a, b] = await other.reserve(req(q));
        expect([a!.id, b!.id]).toEqual([finished.id, running.id]);
        const ok = (id: string) => JSON.stringify({ id, state: "SUCCESS", result: 42 });
        expect(await other.settle([done(a!, { result: ok(finished.id) })])).toEqual([finished.id]);
        await t.revoke([finished.id, running.id], 60_000, false);
        // Left to its worker, which finishes it: its own result stands.
        expect(await other.settle([done(b!, { result: ok(running.id) })])).toEqual([running.id]);
        await t.revoke([running.id], 0, false);
        expect(await t.getResult(finished.id)).toBe(ok(finished.id));
        expect(await t.getResult(running.id)).toBe(ok(running.id));
        expect(await other.waitForResult(finished.id, 200)).toBe(ok(finished.id));
      });

      it("onRevoke listeners hear every revoke with its terminate flag, from another connection", async () => {
        const heard: [string, boolean][] = [];
        const killed = freshId("kill");
        const spared = freshId("spare");
        const after = freshId("after");
        // Only this test's ids: a subscriber that reconnects meanwhile (a loaded machine, a Cluster picking a
        // new subscriber node) is told the revokes still held from earlier tests again, as it should be.
        const mine = new Set([killed, spared, after]);
        const stop = await other.onRevoke((ids, terminate) => {
          for (const id of ids) if (mine.has(id)) heard.push([id, terminate]);
        });
        await t.revoke([spared], 60_000, false);
        await t.revoke([killed], 60_000, true);
        const deadline = Date.now() + 3000;
        while (heard.length < 2 && Date.now() < deadline) await sleep(10);
        expect(heard).toEqual([
          [spared, false],
          [killed, true],
        ]);

        stop();
        await t.revoke([after], 60_000, true);
        await sleep(300);
        expect(heard.map(([id]) => id)).not.toContain(after);
      });

      it("onRevoke listeners hear revokes in the order they were made (on a Cluster too)", async () => {
        const heard: string[] = [];
        const ids = Array.from({ length: 20 }, (_, i) => freshId(`order${i}`));
        const mine = new Set(ids);
        const stop = await other.onRevoke((got) => heard.push(...got.filter((id) => mine.has(id))));
        for (const id of ids) await t.revoke([id], 60_000, false);
        const deadline = Date.now() + 3000;
        while (heard.length < ids.length && Date.now() < deadline) await sleep(10);
        stop();
        expect(heard).toEqual(ids);
      });

      it("onRevoke listeners hear how long a revoke lasts (none for one that lasts for ever), so a worker forgets it no later than the broker", async () => {
        const heard = new Map<string, number | undefined>();
        const brief = freshId("brief");
        const forever = freshId("forever");
        const stop = await other.onRevoke((ids, _terminate, ttlMs) => {
          for (const id of ids) if (id === brief || id === forever) heard.set(id, ttlMs);
        });
        await t.revoke([brief], 5000, false);
        await t.revoke([forever], 0, false);
        const deadline = Date.now() + 3000;
        while (heard.size < 2 && Date.now() < deadline) await sleep(10);
        stop();
        expect(heard.get(brief)).toBeGreaterThan(2000);
        expect(heard.get(brief)).toBeLessThanOrEqual(5000);
        expect(heard.has(forever)).toBe(true);
        expect(heard.get(forever)).toBeUndefined();
      });

      it("onRevoke listeners hear how long an id revoked again stays revoked: the longer revoke, not the last one", async () => {
        const forever = freshId("forever");
        const hour = freshId("hour");
        await t.revoke([forever], 0, false);
        await t.revoke([hour], 3_600_000, false);
        // Only the terminating revoke below: a subscriber that reconnects meanwhile is told the plain ones
        // again (without terminate).
        const told = new Map<string, number | undefined>();
        const stop = await other.onRevoke((ids, terminate, ttlMs) => {
          for (const id of ids) if (terminate && (id === forever || id === hour)) told.set(id, ttlMs);
        });
        await t.revoke([forever, hour], 200, true);
        const deadline = Date.now() + 3000;
        while (told.size < 2 && Date.now() < deadline) await sleep(10);
        stop();
        expect(told.has(forever)).toBe(true);
        expect(told.get(forever)).toBeUndefined();
        expect(told.get(hour)).toBeGreaterThan(3_500_000);
        expect(told.get(hour)).toBeLessThanOrEqual(3_600_000);
      });
    });

    describe("unique keys", () => {
      it("a unique key holds while the task is queued or running, and frees when it settles", async () => {
        const q = freshQueue();
        const key = `uk-${uid()}`;
        const a = item(q, freshId("a"), { uniqueKey: key });
        expect(await t.enqueue([a])).toEqual([{ id: a.id, duplicate: false }]);
        expect(await other.enqueue([item(q, freshId("b"), { uniqueKey: key })])).toEqual([{ id: a.id, duplicate: true }]);
        const got = await t.reserve(req(q));
        expect(got.map((r) => r.id)).toEqual([a.id]);
        expect(await t.enqueue([item(q, freshId("c"), { uniqueKey: key })])).toEqual([{ id: a.id, duplicate: true }]);
        await t.settle([done(got[0]!, { uniqueKey: key })]);
        const d = item(q, freshId("d"), { uniqueKey: key });
        expect(await t.enqueue([d])).toEqual([{ id: d.id, duplicate: false }]);
      });

      it("duplicates inside one batch resolve to the first item", async () => {
        const q = freshQueue();
        const key = `uk-${uid()}`;
        const a = item(q, freshId("a"), { uniqueKey: key });
        const b = item(q, freshId("b"), { uniqueKey: key });
        const c = item(q, freshId("c"));
        expect(await t.enqueue([a, b, c])).toEqual([
          { id: a.id, duplicate: false },
          { id: a.id, duplicate: true },
          { id: c.id, duplicate: false },
        ]);
        expect(await t.stats([q])).toEqual([{ name: q, ready: 2, delayed: 0, active: 0, dead: 0 }]);
      });

      it("uniqueForMs bounds how long the key holds", async () => {
        const q = freshQueue();
        const key = `uk-${uid()}`;
        const a = item(q, freshId("a"), { uniqueKey: key, uniqueForMs: 200 });
        await t.enqueue([a]);
        expect((await t.enqueue([item(q, freshId("b"), { uniqueKey: key })]))[0]).toEqual({ id: a.id, duplicate: true });
        await sleep(300);
        const c = item(q, freshId("c"), { uniqueKey: key });
        expect(await t.enqueue([c])).toEqual([{ id: c.id, duplicate: false }]);
      });

      it("a dead-lettered task no longer holds its key", async () => {
        const q = freshQueue();
        const key = `uk-${uid()}`;
        await t.enqueue([item(q, freshId("a"), { uniqueKey: key })]);
        const [r] = await t.reserve(req(q));
        await t.deadLetter([{ id: r!.id, token: r!.token, queue: q, reason: "x" }]);
        const b = item(q, freshId("b"), { uniqueKey: key });
        expect(await t.enqueue([b])).toEqual([{ id: b.id, duplicate: false }]);
      });
    });

    describe("stats", () => {
      it("counts ready, delayed, active and dead per queue", async () => {
        const q = freshQueue();
        const unknown = freshQueue("empty");
        await t.enqueue([item(q), item(q), item(q), item(q), item(q)]);
        await t.enqueue([item(q, freshId(), { dueAt: Date.now() + 60_000 }), item(q, freshId(), { dueAt: Date.now() + 60_000 })]);
        const rs = await t.reserve(req(q, { max: 2 }));
        await t.deadLetter([{ id: rs[0]!.id, token: rs[0]!.token, queue: q, reason: "x" }]);
        expect(await t.stats([q, unknown])).toEqual([
          { name: q, ready: 3, delayed: 2, active: 1, dead: 1 },
          { name: unknown, ready: 0, delayed: 0, active: 0, dead: 0 },
        ]);
        const all = await t.stats();
        expect(all.find((c) => c.name === q)).toEqual({ name: q, ready: 3, delayed: 2, active: 1, dead: 1 });
      });
    });

    describe("observability (optional methods)", () => {
      it("describeTask tells ready, delayed, active and dead apart, and null once settled", async () => {
        if (!t.describeTask) return;
        const q = freshQueue();
        const [a, b, c] = [item(q), item(q, freshId(), { dueAt: Date.now() + 60_000 }), item(q)];
        await t.enqueue([a, b, c]);
        expect(await other.describeTask!(a.id)).toMatchObject({ id: a.id, queue: q, state: "ready", payload: a.payload });
        expect(await other.describeTask!(b.id)).toMatchObject({ state: "delayed", dueAt: expect.any(Number) });
        const got = await t.reserve(req(q, { max: 2, workerId: "w-obs" }));
        expect(await other.describeTask!(got[0]!.id)).toMatchObject({ state: "active", workerId: "w-obs", deliveries: 1, startedAt: expect.any(Number) });
        await t.deadLetter([{ ...got[1]!, reason: "poisoned" }]);
        expect(await other.describeTask!(got[1]!.id)).toMatchObject({ state: "dead", reason: "poisoned" });
        await t.settle([done(got[0]!)]);
        expect(await other.describeTask!(got[0]!.id)).toBeNull();
        expect(await other.describeTask!(freshId("never"))).toBeNull();
      });

      it("publishActivity appends capped events and adds counters that readCounters sums", async () => {
        if (!t.publishActivity || !other.readEvents || !other.readCounters) return;
        const tag = uid();
        const minute = Math.floor(Date.now() / 60_000);
        const batch = (from: number, n: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ tag, i: from + i }));
        await t.publishActivity({ events: eventLinesOf(batch(0, 30)), eventsMaxLen: 50, counters: [{ minute, key: `succeeded:${tag}`, n: 2 }], countersTtlMs: 60_000 });
        await t.publishActivity({ events: eventLinesOf(batch(30, 30)), eventsMaxLen: 50, counters: [{ minute, key: `succeeded:${tag}`, n: 3 }], countersTtlMs: 60_000 });
        const mine = (await other.readEvents(10)).map((e) => JSON.parse(e.data) as { tag?: string; i: number });
        expect(mine.map((e) => e.i)).toEqual(Array.from({ length: 10 }, (_, i) => 50 + i)); // newest, oldest first
        const all = await other.readEvents(1000);
        expect(all.length).toBeLessThanOrEqual(50 + 100); // capped (Redis trims approximately)
        expect(all.length).toBeGreaterThanOrEqual(50);
        const rows = (await other.readCounters(minute - 1)).filter((r) => r.key === `succeeded:${tag}`);
        expect(rows.reduce((s, r) => s + r.n, 0)).toBe(5);
      });
    });

    describe("workers", () => {
      it("heartbeat registers and updates a worker; removeWorker forgets it", async () => {
        const id = `w-${uid()}`;
        const info = workerInfo(id, { queues: ["a", "b"], processed: 1 });
        await t.heartbeat(info, 60_000);
        let seen = (await other.workers()).find((w) => w.id === id);
        expect(seen).toMatchObject({ ...info, lastBeat: expect.any(Number) });
        expect(Math.abs(seen!.lastBeat - Date.now())).toBeLessThan(5000);

        await t.heartbeat({ ...info, processed: 99, active: 2, lastBeat: Date.now() }, 60_000);
        seen = (await other.workers()).find((w) => w.id === id);
        expect(seen).toMatchObject({ processed: 99, active: 2 });

        await t.removeWorker(id);
        expect((await other.workers()).some((w) => w.id === id)).toBe(false);
      });

      it("a worker whose heartbeat TTL lapses drops out of the list", async () => {
        const id = `w-${uid()}`;
        await t.heartbeat(workerInfo(id), 200);
        expect((await t.workers()).some((w) => w.id === id)).toBe(true);
        await sleep(350);
        expect((await t.workers()).some((w) => w.id === id)).toBe(false);
      });
    });

    describe("blocking reserve", () => {
      it("wakes up promptly when another connection enqueues", async () => {
        const latencies: number[] = [];
        for (let i = 0; i < 5; i++) {
          const q = freshQueue();
          const it1 = item(q);
          const waiting = other.reserve(req(q, { waitMs: 5000 }));
          await sleep(60 + i * 17);
          const sentAt = Date.now();
          await t.enqueue([it1]);
          const got = await waiting;
          latencies.push(Date.now() - sentAt);
          expect(got.map((r) => r.id)).toEqual([it1.id]);
        }
        expect(median(latencies)).toBeLessThan(100);
        expect(Math.max(...latencies)).toBeLessThan(1000);
      });

      it("returns [] after waitMs when nothing arrives, ignoring other queues", async () => {
        const q = freshQueue();
        const elsewhere = freshQueue("elsewhere");
        const start = Date.now();
        const waiting = other.reserve(req(q, { waitMs: 400 }));
        await sleep(100);
        await t.enqueue([item(elsewhere)]);
        expect(await waiting).toEqual([]);
        const elapsed = Date.now() - start;
        expect(elapsed).toBeGreaterThanOrEqual(380);
        expect(elapsed).toBeLessThan(2500);
        expect(await t.stats([elsewhere])).toEqual([{ name: elsewhere, ready: 1, delayed: 0, active: 0, dead: 0 }]);
      });
    });

    describe("concurrency", () => {
      it("several connections reserving at once never get the same task twice, and get them all", async () => {
        const q = freshQueue();
        const total = 500;
        const ids = Array.from({ length: total }, (_, i) => freshId(`c${i}`));
        for (let i = 0; i < total; i += 100) await t.enqueue(ids.slice(i, i + 100).map((id) => item(q, id)));
        const consumers = [t, other, await open(), await open()];
        const seen: string[] = [];
        const deadline = Date.now() + 20_000;
        await Promise.all(
          consumers.map(async (c, n) => {
            let idle = 0;
            while (seen.length < total && Date.now() < deadline && idle < 5) {
              const got = await c.reserve(req(q, { max: 1 + n * 3, workerId: `w-conc-${n}`, waitMs: n % 2 === 0 ? 0 : 50 }));
              if (got.length === 0) {
                idle++;
                continue;
              }
              idle = 0;
              for (const r of got) seen.push(r.id);
              const ok = await c.settle(got.map((r) => done(r)));
              expect(ok.sort()).toEqual(got.map((r) => r.id).sort());
            }
          }),
        );
        expect(seen.length).toBe(total);
        expect(new Set(seen).size).toBe(total);
        expect([...seen].sort()).toEqual([...ids].sort());
        expect(await t.stats([q])).toEqual([{ name: q, ready: 0, delayed: 0, active: 0, dead: 0 }]);
      });
    });

    // Not the Transport contract alone: what `qworker dead` shows depends on the worker passing the error
    // to settle and on the transport keeping it, so a real Worker runs on each transport here.
    describe("a worker on this transport", () => {
      it("dead-letters a task that failed after its retries, and one no worker registered, with the last error", { timeout: 30_000 }, async () => {
        const q = freshQueue("worker");
        const attempts = new Map<number, number>();
        const registry = new TaskRegistry();
        const boom = defineTask({ name: "conf.boom", retry: { max: 1, countdown: 0, jitter: false, backoff: false } }, (n: number) => {
          const attempt = (attempts.get(n) ?? 0) + 1;
          attempts.set(n, attempt);
          throw new TypeError(`bad input ${n} (attempt ${attempt})`);
        });
        registry.register("conf.boom", boom as never, "conformance");
        const config = configSchema.parse({ queues: [q], concurrency: 2, heartbeat_interval: 0.1 });
        const send = (task: string, args: unknown[]) => buildEnqueueItem(task, args, {}, { queue: q, maxPayloadBytes: config.max_payload_bytes });
        const failing = send("conf.boom", [7]);
        const unknown = send("conf.nobody", []);
        await t.enqueue([failing, unknown]);

        const worker = new Worker({ transport: await open(), registry, config, logger: pino({ level: "silent" }) });
        await worker.start();
        let dead: Awaited<ReturnType<Transport["listDead"]>> = [];
        try {
          const deadline = Date.now() + 20_000;
          while (dead.length < 2 && Date.now() < deadline) {
            await sleep(50);
            dead = await t.listDead(q);
          }
        } finally {
          await worker.stop();
        }
        const byId = new Map(dead.map((d) => [d.id, d]));
        expect(attempts.get(7)).toBe(2);
        expect(byId.get(failing.id)).toMatchObject({ reason: "failed after 1 retries: bad input 7 (attempt 2)", error: "TypeError: bad input 7 (attempt 2)" });
        expect(byId.get(unknown.id)).toMatchObject({
          reason: "not registered: conf.nobody",
          error: 'NotRegisteredError: task "conf.nobody" is not registered with this worker',
        });
      });
    });
  });
}
