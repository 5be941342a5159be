/**
 * A real Redis Cluster for integration tests: three masters (no replicas), each a private redis-server on
 * its own loopback port (test/support/redis-server.ts), joined with `redis-cli --cluster create`.
 *
 *   const c = await startRedisCluster();
 *   ...c.url...            // redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
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
  cleanup(): Promise<void>;
}

/** redis-cli next to redis-server (Debian ships both in redis-tools/redis-server). */
export function redisCliAvailable(): boolean {
  return ["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"].some((p) => existsSync(p));
}

function redisCli(): string {
  return ["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"].find((p) => existsSync(p)) ?? "redis-cli";
}

export async function startRedisCluster(size = 3): Promise<RedisClusterHandle> {
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
    await run(redisCli(), ["--cluster", "create", ...addrs, "--cluster-replicas", "0", "--cluster-yes"], { timeout: 30_000 });
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
    return { nodes, url: `redis+cluster://${addrs.join(",")}`, cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
