/**
 * `qworker revoke` on Celery tasks that a qworker worker consumes: the revoke names the Celery task id,
 * which the worker holds under a lease id of its own (`celery:…`), and must act like Celery's
 * `app.control.revoke`: a prefetched or parked message never runs, a running one is aborted with
 * --terminate, and each ends REVOKED in Celery's result format. The `celery:…` id that `inspect`
 * shows works the same way. Messages are sent with qworker's Celery client (the exact envelope Celery's
 * apply_async writes), so no Python is needed.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCeleryClient, type CeleryClient, type CeleryResultRef } from "../../src/celery/client.ts";
import { createClient } from "../../src/client/client.ts";
import { ROOT, startQworkerWorker, type Proc } from "../fixtures/celery/interop.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

const run = promisify(execFile);
const DELAYED = "qw:q:celery:celery:delayed";

/** The qworker CLI in a scratch directory (no config file there: --broker says where). */
async function cli(brokerUrl: string, ...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const cwd = mkdtempSync(path.join(os.tmpdir(), "qw-celery-revoke-cli-"));
  return run(process.execPath, [path.join(ROOT, "bin", "qworker.js"), ...args, "--broker", brokerUrl], {
    cwd,
    env: { ...process.env, QWORKER_FROM_SOURCE: "1", NO_COLOR: "1", FORCE_COLOR: "0" },
    timeout: 20_000,
  });
}

/** The stored Celery state of a task, waiting at most `timeout` seconds for a ready one. */
async function outcome(ref: CeleryResultRef, timeout = 10): Promise<unknown> {
  const r = await ref.wait({ timeout });
  return r.state === "SUCCESS" ? { state: r.state, value: r.result } : { state: r.state, type: r.error?.excType, args: r.error?.args };
}

const REVOKED = { state: "REVOKED", type: "TaskRevokedError", args: ["revoked"] };

describe.skipIf(!redisServerAvailable())("qworker revoke on Celery tasks run by a qworker worker", () => {
  const servers: RedisServerHandle[] = [];
  const workers: Proc[] = [];
  const clients: CeleryClient[] = [];
  const redises: Redis[] = [];
  let outDir: string;

  beforeAll(() => {
    outDir = mkdtempSync(path.join(os.tmpdir(), "qw-celery-revoke-out-"));
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.kill()));
    await Promise.all(clients.map((c) => c.close()));
    for (const r of redises) r.disconnect();
    await Promise.all(servers.map((s) => s.cleanup()));
  });

  async function server(): Promise<{ url: string; r: Redis; celery: CeleryClient }> {
    const s = await startRedisServer();
    servers.push(s);
    const r = new Redis(s.url);
    redises.push(r);
    const celery = await createCeleryClient({ brokerUrl: s.url });
    clients.push(celery);
    return { url: s.url, r, celery };
  }

  async function worker(brokerUrl: string, extraYaml = "", slots: { concurrency?: number; prefetch?: number } = {}): Promise<Proc> {
    const w = startQworkerWorker(brokerUrl, outDir, extraYaml, slots);
    workers.push(w);
    await w.waitFor(/celery queues: celery/);
    return w;
  }

  /** Tags the fixture tasks wrote when they ran to the end. */
  const ran = () => readdirSync(outDir).flatMap((f) => readFileSync(path.join(outDir, f), "utf8").split("\n"));

  it("by Celery task id: a prefetched task never runs, a running one is terminated, a parked one never runs", async () => {
    const { url, r, celery } = await server();
    const w = await worker(url, "", { concurrency: 1, prefetch: 2 });
    const busy = await celery.send("tasks.abortable", [30_000, "id-busy"]);
    await w.waitFor(new RegExp(`tasks\\.abortable\\[${busy.id}\\] started`));
    // The one slot is busy: this one is received (leased to the worker) and waits in its prefetch.
    const waiting = await celery.send("tasks.slow", [10, "id-prefetched"]);
    await w.waitFor(new RegExp(`tasks\\.slow\\[${waiting.id}\\] received`));
    // Revoked first, well before its countdown ends (each CLI run is a Node start-up).
    const parked = await celery.send("tasks.slow", [10, "id-parked"], { countdown: 6 });
    await expect.poll(() => r.zcard(DELAYED), { timeout: 5000 }).toBe(1);
    await cli(url, "revoke", parked.id);

    expect((await cli(url, "revoke", waiting.id)).stderr).toContain(`revoked task ${waiting.id} for 86400 s`);
    expect(await outcome(waiting)).toEqual(REVOKED);
    expect(w.output()).toContain(`tasks.slow[${waiting.id}] revoked while waiting in the prefetch; not run`);

    await cli(url, "revoke", busy.id, "--terminate");
    expect(await outcome(busy)).toEqual(REVOKED);
    expect(w.output()).toContain(`tasks.abortable[${busy.id}] revoked with --terminate; aborting it`);

    // Parked until its ETA, then finished as REVOKED instead of run.
    expect(await outcome(parked)).toEqual(REVOKED);

    expect(ran()).not.toContain("id-busy");
    expect(ran()).not.toContain("id-prefetched");
    expect(ran()).not.toContain("id-parked");
    // Nothing is left leased or parked.
    expect(await r.zcard("qw:q:celery:celery:active")).toBe(0);
    expect(await r.zcard(DELAYED)).toBe(0);
    await w.kill("SIGTERM");
  }, 60_000);

  it("by the celery:… id inspect shows: a running task is terminated, a parked one ends REVOKED for Celery clients", async () => {
    const { url, r, celery } = await server();
    const w = await worker(url);
    const busy = await celery.send("tasks.abortable", [30_000, "lease-busy"]);
    await w.waitFor(new RegExp(`tasks\\.abortable\\[${busy.id}\\] started`));
    const active = JSON.parse((await cli(url, "inspect", "active", "--json")).stdout) as { active: { id: string }[] };
    expect(active.active).toHaveLength(1);
    const busyLease = active.active[0]!.id;
    expect(busyLease).toMatch(/^celery:/);

    const parked = await celery.send("tasks.slow", [10, "lease-parked"], { countdown: 6 });
    await expect.poll(() => r.zcard(DELAYED), { timeout: 5000 }).toBe(1);
    const scheduled = JSON.parse((await cli(url, "inspect", "scheduled", "--json")).stdout) as { scheduled: { id: string }[] };
    const parkedLease = scheduled.scheduled[0]!.id;
    expect(parkedLease).toMatch(/^celery:/);
    // The parked message stays where it is until due, then the worker finishes it as REVOKED in
    // Celery's format (not as a qworker result under the lease id, which no Celery client reads).
    expect((await cli(url, "revoke", parkedLease)).stderr).toContain(`${parkedLease} is Celery task ${parked.id}: revoking that id`);

    const term = await cli(url, "revoke", busyLease, "--terminate");
    expect(term.stderr).toContain(`${busyLease} is Celery task ${busy.id}: revoking that id`);
    expect(term.stderr).toContain(`revoked task ${busy.id} for 86400 s; running ones are being terminated`);
    expect(await outcome(busy)).toEqual(REVOKED);

    expect(await outcome(parked)).toEqual(REVOKED);
    expect(await r.exists(`qw:r:${parkedLease}`)).toBe(0);
    expect(ran()).not.toContain("lease-busy");
    expect(ran()).not.toContain("lease-parked");
    await w.kill("SIGTERM");
  }, 60_000);

  it("by the celery:… id through the library (client.transport.revoke): the same as qworker revoke", async () => {
    const { url, r, celery } = await server();
    const w = await worker(url);
    const busy = await celery.send("tasks.abortable", [30_000, "lib-busy"]);
    await w.waitFor(new RegExp(`tasks\\.abortable\\[${busy.id}\\] started`));
    const [busyLease] = await r.zrange("qw:q:celery:celery:active", 0, -1);
    expect(busyLease).toMatch(/^celery:/);
    const parked = await celery.send("tasks.slow", [10, "lib-parked"], { countdown: 4 });
    await expect.poll(() => r.zcard(DELAYED), { timeout: 5000 }).toBe(1);
    const [parkedLease] = await r.zrange(DELAYED, 0, -1);
    expect(parkedLease).toMatch(/^celery:/);

    const client = await createClient({ brokerUrl: url });
    const report = await client.transport.revoke([busyLease!, parkedLease!, "plain-id"], 60_000, true).finally(() => client.close());
    expect(await outcome(busy)).toEqual(REVOKED);
    expect(w.output()).toContain(`tasks.abortable[${busy.id}] revoked with --terminate; aborting it`);
    // Revoked under its Celery task id, not the lease id: Celery clients read the REVOKED result.
    expect(await r.zscore("qw:revoked", busy.id)).not.toBeNull();
    expect(await r.zscore("qw:revoked", busyLease!)).toBeNull();
    expect(await outcome(parked)).toEqual(REVOKED);
    expect(await r.exists(`qw:r:${parkedLease}`)).toBe(0);
    expect(ran()).not.toContain("lib-busy");
    expect(ran()).not.toContain("lib-parked");
    expect(report?.aliases).toEqual([
      [busyLease, busy.id],
      [parkedLease, parked.id],
    ]);
    await w.kill("SIGTERM");
  }, 60_000);

  it("with celery.broker_url another Redis: a revoke on the worker's broker reaches a parked Celery message", async () => {
    const own = await server();
    const celeryRedis = await server();
    const w = await worker(own.url, `  broker_url: ${celeryRedis.url}`);
    const parked = await celeryRedis.celery.send("tasks.slow", [10, "other-parked"], { countdown: 5 });
    await expect.poll(() => celeryRedis.r.zcard(DELAYED), { timeout: 5000 }).toBe(1);
    // `qworker revoke` with the worker's config reaches the worker's own broker, not Celery's.
    await cli(own.url, "revoke", parked.id);
    expect(await outcome(parked)).toEqual(REVOKED);
    expect(ran()).not.toContain("other-parked");
    const sentinel = await celeryRedis.celery.send("tasks.add", [2, 3]);
    expect(await outcome(sentinel)).toEqual({ state: "SUCCESS", value: 5 });
    await w.kill("SIGTERM");
  }, 60_000);
});
