import { afterAll } from "vitest";
import { createRedisTransport } from "../../src/broker/redis/index.ts";
import { startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { runConformanceSuite } from "./conformance/suite.ts";

// One private redis-server for this file, started on the first transport the suite asks for; every
// transport is its own set of connections to it, as separate worker processes would be.
let server: Promise<RedisServerHandle> | undefined;

afterAll(async () => {
  if (server) await (await server).cleanup();
});

runConformanceSuite("redis", async (settings) => {
  server ??= startRedisServer();
  const transport = createRedisTransport((await server).url, { ...settings });
  return { transport, cleanup: () => transport.close() };
});
