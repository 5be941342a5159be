/**
 * qworker on its Redis transport. Run by bench/run.ts as
 * `node --import tsx bench/engines/qworker.ts <case> <json>`; see bench/lib/qworker-adapter.ts.
 */
import type { Transport } from "../../src/broker/transport.ts";
import { runEngineMain } from "../lib/engine.ts";
import { importFromRepo, qworkerEngine } from "../lib/qworker-adapter.ts";

await runEngineMain(async () =>
  qworkerEngine({
    name: "qworker",
    kind: "redis",
    usesRedis: true,
    brokerUrl: (opts) => opts.redisUrl,
    async createTransport(url) {
      const create = (await importFromRepo("src/broker/redis/index.ts", "createRedisTransport")) as (u: string) => Transport;
      return create(url);
    },
  }),
);
