import { Redis } from "ioredis";
import { afterAll, beforeAll } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { startRedisServer, type RedisServerHandle } from "./redis-server.ts";

export interface PrefixPairs {
  /** The file's own redis-server (set in beforeAll). */
  readonly redis: RedisServerHandle;
  /** A plain client on it, for planting and reading keys behind the transport's back. */
  readonly raw: Redis;
  /** A worker-side transport and a CLI-side one (fail-fast, plain errors) on a prefix of the test's own. */
  pair(): Promise<{ p: string; t: Transport; cli: Transport }>;
  /** Closed with the server at the end of the file. */
  track(t: Transport): void;
}

/**
 * One redis-server per test file, and transports on fresh key prefixes, for tests that plant other
 * programs' data under qworker's keys: each test gets its own prefix, so what one corrupts the next never
 * sees. Registers the file's beforeAll/afterAll hooks.
 */
export function usePrefixPairs(stem: string): PrefixPairs {
  let redis: RedisServerHandle | undefined;
  let raw: Redis | undefined;
  const opened: Transport[] = [];
  let prefixes = 0;

  beforeAll(async () => {
    redis = await startRedisServer();
    raw = new Redis(redis.url);
  });
  afterAll(async () => {
    await Promise.all(opened.map((t) => t.close()));
    raw?.disconnect();
    await redis?.cleanup();
  });

  const started = <T>(v: T | undefined): T => {
    if (v === undefined) throw new Error("usePrefixPairs: used before its beforeAll ran");
    return v;
  };
  return {
    get redis() {
      return started(redis);
    },
    get raw() {
      return started(raw);
    },
    async pair() {
      const p = `${stem}${++prefixes}:`;
      const url = started(redis).url;
      const t = createRedisTransport(url, { prefix: p });
      const cli = createRedisTransport(url, { prefix: p, failFast: true, commandTimeoutMs: 5000 });
      opened.push(t, cli);
      await t.connect();
      await cli.connect();
      return { p, t, cli };
    },
    track(t) {
      opened.push(t);
    },
  };
}
