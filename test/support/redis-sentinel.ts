/**
 * A real Sentinel deployment for integration tests: one master, one replica and one Sentinel (quorum 1),
 * each a private redis-server on its own loopback port (test/support/redis-server.ts).
 *
 *   const s = await startSentinelSetup();
 *   ...s.url...                 // redis+sentinel://127.0.0.1:PORT/qworker-test
 *   await s.failover();         // SENTINEL FAILOVER, resolves once the sentinel names the replica master
 *   await s.cleanup();
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { Redis } from "ioredis";
import { startRedisServer, type RedisServerHandle } from "./redis-server.ts";

export const MASTER_NAME = "qworker-test";

export interface SentinelSetup {
  readonly master: RedisServerHandle;
  readonly replica: RedisServerHandle;
  readonly sentinel: RedisServerHandle;
  /** The qworker broker URL for this deployment. */
  readonly url: string;
  /** The port the sentinel currently names as master's. */
  masterPort(): Promise<number>;
  /** Wait until the replica has everything the current master has (WAIT on the master). */
  sync(timeoutMs?: number): Promise<void>;
  /** Promote the replica with SENTINEL FAILOVER; resolves once the sentinel reports the new master. */
  failover(timeoutMs?: number): Promise<void>;
  cleanup(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function untilTrue(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

export async function startSentinelSetup(): Promise<SentinelSetup> {
  const started: RedisServerHandle[] = [];
  const clients: Redis[] = [];
  const cleanup = async (): Promise<void> => {
    for (const c of clients.splice(0)) c.disconnect();
    for (const s of started.splice(0).reverse()) await s.cleanup();
  };
  try {
    // No 5 s wait before the first full sync (the default delay lets more replicas join one transfer).
    const fastSync = ["--repl-diskless-sync-delay", "0"];
    const master = await startRedisServer({ extraArgs: fastSync });
    started.push(master);
    const replica = await startRedisServer({ extraArgs: [...fastSync, "--replicaof", master.host, String(master.port)] });
    started.push(replica);
    const admin = (port: number): Redis => {
      const c = new Redis({ host: "127.0.0.1", port, lazyConnect: false, maxRetriesPerRequest: 1 });
      c.on("error", () => {});
      clients.push(c);
      return c;
    };
    const replicaClient = admin(replica.port);
    await untilTrue("the replica to sync", 15_000, async () => /master_link_status:up/.test(await replicaClient.info("replication")));

    // The sentinel's config lives in the replica's data dir, which cleanup() removes.
    const conf = path.join(replica.dir, "sentinel.conf");
    await writeFile(
      conf,
      [
        `sentinel monitor ${MASTER_NAME} ${master.host} ${master.port} 1`,
        `sentinel down-after-milliseconds ${MASTER_NAME} 2000`,
        `sentinel failover-timeout ${MASTER_NAME} 10000`,
        "",
      ].join("\n"),
    );
    const sentinel = await startRedisServer({ sentinelConfig: conf, dir: replica.dir });
    started.push(sentinel);
    const sentinelClient = admin(sentinel.port);
    const masterPort = async (): Promise<number> => {
      const addr = (await sentinelClient.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)) as [string, string] | null;
      return addr ? Number(addr[1]) : 0;
    };
    // A failover needs the sentinel to know the replica (it learns it from the master's INFO).
    await untilTrue("the sentinel to see the replica", 15_000, async () => {
      const replicas = (await sentinelClient.call("SENTINEL", "REPLICAS", MASTER_NAME)) as string[][];
      return replicas.some((r) => r.includes(String(replica.port)) && r[r.indexOf("flags") + 1] === "slave");
    });
    const clientFor = new Map<number, Redis>([[master.port, admin(master.port)], [replica.port, replicaClient]]);
    return {
      master,
      replica,
      sentinel,
      url: `redis+sentinel://127.0.0.1:${sentinel.port}/${MASTER_NAME}`,
      masterPort,
      async sync(timeoutMs = 10_000) {
        const current = clientFor.get(await masterPort());
        if (!current) throw new Error("the sentinel names no known master");
        const acked = (await current.call("WAIT", "1", String(timeoutMs))) as number;
        if (acked < 1) throw new Error(`the replica did not acknowledge the master's writes within ${timeoutMs} ms`);
      },
      async failover(timeoutMs = 20_000) {
        const before = await masterPort();
        await sentinelClient.call("SENTINEL", "FAILOVER", MASTER_NAME);
        await untilTrue("the sentinel to name a new master", timeoutMs, async () => (await masterPort()) !== before);
      },
      cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
