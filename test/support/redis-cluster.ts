/**
 * A real Redis Cluster for integration tests: three masters (optionally each with a replica), each node a
 * private redis-server on its own loopback port (test/support/redis-server.ts), joined with
 * `redis-cli --cluster create`.
 *
 *   const c = await startRedisCluster();            // or startRedisCluster({ replicas: 1 })
 *   ...c.url...            // redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
 *   await c.failover(slot) // promote the replica of the master that owns `slot` (CLUSTER FAILOVER)
 *   await c.cleanup();
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { promisify } from "node:util";
import { rawCommand, startRedisServer, type RedisServerHandle } from "./redis-server.ts";

const run = promisify(execFile);

export interface RedisClusterHandle {
  readonly nodes: RedisServerHandle[];
  readonly url: string;
  /** The hash slot of a key (CLUSTER KEYSLOT). */
  keySlot(key: string): Promise<number>;
  /** The port of the master that serves `slot` now. */
  masterOf(slot: number): Promise<number>;
  /**
   * Promote that master's replica with CLUSTER FAILOVER (the coordinated kind: the master stops taking
   * writes until its replica has them all, so nothing is lost); resolves once the cluster agrees.
   */
  failover(slot: number, timeoutMs?: number): Promise<{ from: number; to: number }>;
  cleanup(): Promise<void>;
}

/** redis-cli next to redis-server (Debian ships both in redis-tools/redis-server). */
export function redisCliAvailable(): boolean {
  return ["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"].some((p) => existsSync(p));
}

function redisCli(): string {
  return ["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"].find((p) => existsSync(p)) ?? "redis-cli";
}

async function cli(port: number, ...args: string[]): Promise<string> {
  return (await run(redisCli(), ["-p", String(port), ...args], { timeout: 5000 })).stdout;
}

/** CLUSTER SHARDS is Redis 7+; CLUSTER NODES works everywhere: "<id> <ip:port@cport> <flags> <master-id> … <slots>". */
async function nodesTable(port: number): Promise<{ id: string; port: number; master: boolean; masterId: string; slots: [number, number][] }[]> {
  return (await cli(port, "cluster", "nodes"))
    .trim()
    .split("\n")
    .map((line) => {
      const f = line.split(" ");
      const slots = f.slice(8).filter((s) => /^\d+(-\d+)?$/.test(s)).map((s) => {
        const [a, b] = s.split("-").map(Number);
        return [a!, b ?? a!] as [number, number];
      });
      return { id: f[0]!, port: Number(/:(\d+)@/.exec(f[1]!)![1]), master: f[2]!.includes("master"), masterId: f[3]!, slots };
    });
}

export async function startRedisCluster(opts: { masters?: number; replicas?: 0 | 1 } = {}): Promise<RedisClusterHandle> {
  const size = (opts.masters ?? 3) * (1 + (opts.replicas ?? 0));
  const nodes: RedisServerHandle[] = [];
  const cleanup = async (): Promise<void> => {
    for (const n of nodes.splice(0).reverse()) await n.cleanup();
  };
  try {
    for (let i = 0; i < size; i++) {
      nodes.push(
        await startRedisServer({
          // nodes.conf lives in each node's own data dir, so parallel clusters never share one.
          extraArgs: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"],
        }),
      );
    }
    const addrs = nodes.map((n) => `${n.host}:${n.port}`);
    await run(redisCli(), ["--cluster", "create", ...addrs, "--cluster-replicas", String(opts.replicas ?? 0), "--cluster-yes"], { timeout: 30_000 });
    // `create` returns once the slots are assigned; every node must agree before clients use it.
    const deadline = Date.now() + 20_000;
    for (const n of nodes) {
      for (;;) {
        const { stdout } = await run(redisCli(), ["-p", String(n.port), "cluster", "info"], { timeout: 5000 });
        if (/cluster_state:ok/.test(stdout)) break;
        if (Date.now() > deadline) throw new Error(`cluster node ${n.port} not ok: ${stdout.split("\n")[0]}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await rawCommand(nodes[0]!.port, ["PING"]);
    const masterOf = async (slot: number): Promise<number> => {
      const m = (await nodesTable(nodes[0]!.port)).find((n) => n.master && n.slots.some(([a, b]) => slot >= a && slot <= b));
      if (!m) throw new Error(`no master serves slot ${slot}`);
      return m.port;
    };
    const failover = async (slot: number, timeoutMs = 20_000): Promise<{ from: number; to: number }> => {
      const table = await nodesTable(nodes[0]!.port);
      const master = table.find((n) => n.master && n.slots.some(([a, b]) => slot >= a && slot <= b));
      const replica = master && table.find((n) => !n.master && n.masterId === master.id);
      if (!master || !replica) throw new Error(`slot ${slot} has no master with a replica`);
      await cli(replica.port, "cluster", "failover");
      const deadline = Date.now() + timeoutMs;
      // Every node must see the new master, or a client could still be sent to the old one.
      while ((await Promise.all(nodes.map(async (n) => (await nodesTable(n.port)).find((x) => x.port === replica.port)?.master))).includes(false)) {
        if (Date.now() > deadline) throw new Error(`CLUSTER FAILOVER to ${replica.port} did not complete in ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
      return { from: master.port, to: replica.port };
    };
    const keySlot = async (key: string): Promise<number> => Number((await cli(nodes[0]!.port, "cluster", "keyslot", key)).trim());
    return { nodes, url: `redis+cluster://${addrs.join(",")}`, keySlot, masterOf, failover, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
