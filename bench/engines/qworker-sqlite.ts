/**
 * qworker on its embedded SQLite transport (no Redis involved; the Redis cost case does not apply).
 * Run by bench/run.ts as `node --import tsx bench/engines/qworker-sqlite.ts <case> <json>`; the database
 * is a file in the scenario's scratch dir, shared by its producer and worker processes.
 */
import path from "node:path";
import type { Transport } from "../../src/broker/transport.ts";
import { runEngineMain } from "../lib/engine.ts";
import { importFromRepo, qworkerEngine } from "../lib/qworker-adapter.ts";

await runEngineMain(async () =>
  qworkerEngine({
    name: "qworker-sqlite",
    kind: "sqlite",
    usesRedis: false,
    brokerUrl: (opts) => `sqlite://${path.resolve(opts.dataDir, "broker.db")}`,
    async createTransport(url) {
      const create = (await importFromRepo("src/broker/embedded/index.ts", "createSqliteTransport")) as (u: string) => Transport;
      return create(url);
    },
  }),
);
