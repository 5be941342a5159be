import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Client } from "../../src/client/client.ts";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { EXEC_TASKS, ExecEnv, sleep, waitUntil, type WorkerProc } from "./execution-harness.ts";

/** Done-when: revoked and expired tasks are recorded, not run, by a worker that starts later; --terminate stops a running one. */
describe.skipIf(!redisServerAvailable())("revoke and expiry through the real CLI", () => {
  let redis: RedisServerHandle;
  let env: ExecEnv;
  let worker: WorkerProc | undefined;
  let client: Client;

  beforeAll(async () => {
    redis = await startRedisServer();
    env = new ExecEnv(redis.url, { tasks_dir: EXEC_TASKS, concurrency: 2 });
    client = await createClient({ brokerUrl: redis.url });
  });

  afterAll(async () => {
    await worker?.stop();
    await client?.close();
    await redis?.cleanup();
    env?.cleanup();
  });

  it("a task revoked before any worker runs, and one sent with expires 1 s, are recorded and never run", { timeout: 90_000 }, async () => {
    // Sent through the client API (a CLI start costs seconds on a loaded machine); revoke goes through the CLI.
    const revoked = (await client.send("exec.quick", [1])).id;
    const kept = (await client.send("exec.quick", [2])).id;
    const r = await env.cli(["revoke", revoked]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/revoked task .* for 86400 s/);
    const expiring = (await client.send("exec.quick", [3], { expires: 1 })).id;
    await sleep(2000);

    worker = env.worker();
    await waitUntil(async () => (await client.ref(kept).state())?.state === "SUCCESS", 60_000, "the kept task to run");
    await waitUntil(async () => (await client.ref(expiring).state())?.state === "EXPIRED", 10_000, "the expiring task to be EXPIRED");
    expect((await client.ref(revoked).state())?.state).toBe("REVOKED");
    const ran = env.runs().map((x) => x.id);
    expect(ran).toContain(kept);
    expect(ran).not.toContain(revoked);
    expect(ran).not.toContain(expiring);
    expect(worker.logs().some((l) => l.msg.includes(`[${expiring}] expired at`))).toBe(true);
  });

  it("revoke --terminate aborts a running task's signal in the async pool", { timeout: 90_000 }, async () => {
    const id = (await client.send("exec.sleepy", [60_000])).id;
    await waitUntil(() => env.runs().some((x) => x.id === id), 30_000, "the sleepy task to start");
    const r = await env.cli(["revoke", id, "--terminate"]);
    expect(r.code, r.stderr).toBe(0);
    await waitUntil(async () => (await client.ref(id).state())?.state === "REVOKED", 10_000, "the task to be REVOKED");
    expect(env.runs().filter((x) => x.id === id && x.phase === "end")).toHaveLength(0);
    expect(worker!.logs().some((l) => l.msg.includes(`exec.sleepy[${id}] revoked: terminated after`))).toBe(true);
  });

  it("tasks waiting in a worker's prefetch are received at once, and a revoke (plain or --terminate) finishes them unrun", { timeout: 120_000 }, async () => {
    await prefetchedTasksAndRevokes(redis.url, client);
  });

  it("bad input gets a one-line usage error", { timeout: 60_000 }, async () => {
    const r = await env.cli(["revoke", "x", "--ttl", "abc"]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("prefetched tasks and revokes on the embedded broker", () => {
  const dir = mkdtempSync(join(tmpdir(), "qw-prefetch-sqlite-"));
  const url = `sqlite://${join(dir, "broker.db")}`;
  let client: Client;

  beforeAll(async () => {
    client = await createClient({ brokerUrl: url });
  });

  afterAll(async () => {
    await client?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("tasks waiting in a worker's prefetch are received at once, and a revoke (plain or --terminate) finishes them unrun", { timeout: 120_000 }, async () => {
    await prefetchedTasksAndRevokes(url, client);
  });
});

/**
 * A worker with one slot and `prefetch: 3` on its own queue: while the slot is busy, three more tasks wait in
 * its prefetch and are logged as received at once; a plain revoke and a --terminate revoke of two of them
 * finish those as REVOKED without running them, and the third runs once the slot frees.
 */
async function prefetchedTasksAndRevokes(brokerUrl: string, client: Client): Promise<void> {
  // Its own queue, so no other worker on this broker (the Redis tests above start one) takes these.
  const pfEnv = new ExecEnv(brokerUrl, { tasks_dir: EXEC_TASKS, concurrency: 1, prefetch: 3, queues: ["pf"] });
  const pf = pfEnv.worker();
  try {
    const busy = (await client.send("exec.sleepy", [60_000], { queue: "pf" })).id;
    await waitUntil(() => pfEnv.runs().some((x) => x.id === busy), 60_000, "the sleepy task to start");
    const plain = (await client.send("exec.quick", [1], { queue: "pf" })).id;
    const term = (await client.send("exec.quick", [2], { queue: "pf" })).id;
    const kept = (await client.send("exec.quick", [3], { queue: "pf" })).id;
    // The one slot is busy: these wait in the prefetch, and say they were received.
    const received = (id: string) => pf.logs().some((l) => l.msg.includes(`[${id}] received`));
    await waitUntil(() => [plain, term, kept].every(received), 10_000, "the three to be received into the prefetch");
    expect(pfEnv.runs().map((x) => x.id)).toEqual([busy]);

    expect((await pfEnv.cli(["revoke", plain])).code).toBe(0);
    expect((await pfEnv.cli(["revoke", term, "--terminate"])).code).toBe(0);
    const state = async (id: string) => (await client.ref(id).state())?.state;
    await waitUntil(async () => (await state(plain)) === "REVOKED" && (await state(term)) === "REVOKED", 10_000, "both to be REVOKED");
    // Free the slot: the kept one runs, the revoked ones never do.
    expect((await pfEnv.cli(["revoke", busy, "--terminate"])).code).toBe(0);
    await waitUntil(async () => (await state(kept)) === "SUCCESS", 10_000, "the kept task to run");
    const ran = pfEnv.runs().map((x) => x.id);
    expect(ran).not.toContain(plain);
    expect(ran).not.toContain(term);
    expect(pf.logs().filter((l) => l.msg.includes("revoked while waiting in the prefetch; not run"))).toHaveLength(2);
  } finally {
    await pf.stop();
    pfEnv.cleanup();
  }
}
