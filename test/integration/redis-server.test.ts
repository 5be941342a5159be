import { afterAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { Redis } from "ioredis";
import { rawCommand, redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";

const available = redisServerAvailable();

describe.skipIf(!available)("test/support/redis-server", () => {
  const handles: RedisServerHandle[] = [];
  afterAll(async () => {
    for (const h of handles) await h.cleanup();
  });

  async function withClient<T>(url: string, fn: (r: Redis) => Promise<T>): Promise<T> {
    const r = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
    await r.connect();
    try {
      return await fn(r);
    } finally {
      r.disconnect();
    }
  }

  it("starts a private server on a free loopback port", async () => {
    const h = await startRedisServer();
    handles.push(h);
    expect(h.port).toBeGreaterThan(0);
    expect(h.port).not.toBe(6379);
    expect(h.url).toBe(`redis://127.0.0.1:${h.port}`);
    expect(h.pid).toBeTypeOf("number");
    expect(existsSync(h.dir)).toBe(true);
    const appendonly = await withClient(h.url, (r) => r.config("GET", "appendonly"));
    expect(appendonly).toEqual(["appendonly", "no"]);
  });

  it("keeps AOF data across kill9 + start on the same port and dir", async () => {
    const h = await startRedisServer({ appendonly: true, extraArgs: ["--appendfsync", "always"] });
    handles.push(h);
    const port = h.port;
    const firstPid = h.pid;
    await withClient(h.url, async (r) => {
      await r.set("survives", "yes");
      await r.rpush("list", "a", "b", "c");
    });

    await h.kill9();
    expect(h.running).toBe(false);
    expect(h.pid).toBeUndefined();
    await expect(rawCommand(port, ["PING"], 500)).rejects.toThrow();

    await h.start();
    expect(h.port).toBe(port);
    expect(h.pid).not.toBe(firstPid);
    await withClient(h.url, async (r) => {
      expect(await r.get("survives")).toBe("yes");
      expect(await r.lrange("list", 0, -1)).toEqual(["a", "b", "c"]);
    });
  });

  it("shutdown() flushes the AOF so a restart sees every write", async () => {
    const h = await startRedisServer({ appendonly: true });
    handles.push(h);
    await withClient(h.url, (r) => r.set("k", "v"));
    await h.shutdown();
    expect(h.running).toBe(false);
    await h.start();
    expect(await withClient(h.url, (r) => r.get("k"))).toBe("v");
  });

  it("stop() without persistence loses data; cleanup removes the temp dir", async () => {
    const h = await startRedisServer();
    await withClient(h.url, (r) => r.set("k", "v"));
    await h.stop();
    await h.start();
    expect(await withClient(h.url, (r) => r.get("k"))).toBeNull();
    const dir = h.dir;
    await h.cleanup();
    expect(h.running).toBe(false);
    expect(existsSync(dir)).toBe(false);
    await h.cleanup(); // idempotent
  });
});
