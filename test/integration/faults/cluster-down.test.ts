/**
 * A Redis Cluster whose master for qworker's keys is down and has no replica to take over: what an app's
 * client, `qworker send` and `qworker worker` do. Each must fail in one line that names the Cluster and
 * what to check, with the CLI's broker exit code (3). Before the fix a first connect made after the
 * cluster had marked itself failed never settled (ioredis leaves Cluster#connect() pending when its ready
 * check fails on a first connect), so the CLI exited silently with status 0 and createClient() never
 * returned; a send on a client connected before the crash failed with ioredis's "Too many Cluster
 * redirections".
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type Client } from "../../../src/index.ts";
import { redisCliAvailable, startRedisCluster, type RedisClusterHandle } from "../../support/redis-cluster.ts";
import { redisServerAvailable } from "../../support/redis-server.ts";
import { within } from "../../support/within.ts";

const bin = fileURLToPath(new URL("../../../bin/qworker.js", import.meta.url));

function cli(args: string[], env: Record<string, string>, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { env: { ...process.env, QWORKER_FROM_SOURCE: "1", ...env } });
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    p.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe.skipIf(!redisServerAvailable() || !redisCliAvailable())("a Redis Cluster whose master for qworker's keys is down, with no replica", () => {
  let cluster: RedisClusterHandle;
  let client: Client;
  let survivorPort: number;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 0 });
    client = await createClient({ brokerUrl: cluster.url });
    await client.send("demo.add", [1, 2]);
    const port = await cluster.masterOf(await cluster.keySlot("{qw}:queues"));
    survivorPort = cluster.nodes.find((n) => n.port !== port)!.port;
    await cluster.nodes.find((n) => n.port === port)!.kill9();
  }, 60_000);
  afterAll(async () => {
    await within(client?.close() ?? Promise.resolve(), 3000);
    await cluster?.cleanup();
  });

  it("a client connected before the crash fails its send in one line naming the Cluster", async () => {
    const out = await within(client.send("demo.add", [1, 2]), 15_000);
    expect(out).not.toBe("hung");
    const err = (out as { error: Error & { code?: string } }).error;
    expect(err.code).toBe("E_BROKER");
    expect(err.message).toMatch(/^(the Redis Cluster at redis\+cluster:\/\/\S+ could not serve the command \(|lost the connection to the Redis Cluster at redis\+cluster:\/\/)/);
    expect(err.message).not.toMatch(/Too many Cluster redirections/);
    expect(err.message).not.toContain("\n");
  }, 30_000);

  describe("once the cluster has marked itself failed", () => {
    beforeAll(async () => {
      const survivor = new Redis(survivorPort, "127.0.0.1");
      try {
        const deadline = Date.now() + 20_000;
        while (!String(await survivor.cluster("INFO")).includes("cluster_state:fail")) {
          if (Date.now() > deadline) throw new Error("the cluster never reported cluster_state:fail");
          await new Promise((r) => setTimeout(r, 100));
        }
      } finally {
        survivor.disconnect();
      }
    }, 30_000);

    it("createClient() rejects in one line instead of never returning", async () => {
      const out = await within(createClient({ brokerUrl: cluster.url }), 10_000);
      expect(out).not.toBe("hung");
      const err = (out as { error: Error & { code?: string } }).error;
      expect(err.code).toBe("E_BROKER");
      expect(err.message).toMatch(/^the Redis Cluster at redis\+cluster:\/\/\S+ is not ready \(CLUSTER INFO says cluster_state:fail/);
    }, 20_000);

    it("qworker send (and a worker told not to wait) exit with status 3 and one line, not silently with 0", async () => {
      const env = { QWORKER_BROKER_URL: cluster.url, QWORKER_BROKER_CONNECTION_RETRY_ON_STARTUP: "false" };
      for (const args of [["send", "demo.add", "--args", "[1,2]"], ["worker"]]) {
        const r = await cli(args, env, 20_000);
        expect({ args, code: r.code }).toEqual({ args, code: 3 });
        expect(r.stdout).toBe("");
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
        expect(r.stderr).toMatch(/^qworker: error: the Redis Cluster at \S+ is not ready/);
      }
    }, 60_000);

    it("qworker worker waits for it, saying why, as for a Redis that is not up yet", async () => {
      const p = spawn(process.execPath, [bin, "worker", "--log-format", "json"], { env: { ...process.env, QWORKER_FROM_SOURCE: "1", QWORKER_BROKER_URL: cluster.url } });
      let stderr = "";
      p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => p.on("exit", (code) => resolve(code)));
      try {
        const deadline = Date.now() + 15_000;
        while (!/is not ready \(CLUSTER INFO says cluster_state:fail.*: trying again in 1 s/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        expect(stderr).toMatch(/is not ready \(CLUSTER INFO says cluster_state:fail.*: trying again in 1 s/);
        expect(p.exitCode).toBeNull();
        p.kill("SIGTERM");
        expect(await exited).toBe(0);
      } finally {
        p.kill("SIGKILL");
      }
    }, 30_000);
  });
});
