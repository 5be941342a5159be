/**
 * A task whose return value JSON cannot hold (a BigInt, a cycle) fails: it is logged as a failure, counted
 * as one, not retried (the same value would come back) and dead-lettered. It was logged and counted as
 * succeeded while a FAILURE record was stored, and nothing reached the dead-letter set.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import { createClient } from "../../src/client/client.ts";
import { configSchema } from "../../src/config/schema.ts";
import { defineTask } from "../../src/index.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { Worker } from "../../src/worker/worker.ts";
import { waitFor } from "../e2e/helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "qw-result-not-json-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a result JSON cannot hold", () => {
  it("fails the task once (no retries), with a failure log line, and dead-letters it", async () => {
    const url = `sqlite://${join(dir, "b.db")}`;
    const config = { ...configSchema.parse({ broker_url: url, concurrency: 2, retry: { max: 3, countdown: 0.01 } }), broker_url: url };
    const registry = new TaskRegistry();
    let runs = 0;
    const cyclic = () => {
      runs++;
      const a: Record<string, unknown> = {};
      a.self = a;
      return a;
    };
    for (const t of [defineTask({ name: "t.big" }, () => 10n ** 30n), defineTask({ name: "t.cyclic" }, cyclic), defineTask({ name: "t.fine" }, () => ({ ok: 1 }))]) {
      registry.register(t.name!, t as never, "test");
    }
    const lines: { level: number; msg: string }[] = [];
    const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
    const transport = createSqliteTransport(url);
    await transport.connect();
    const worker = new Worker({ transport, registry, config, logger });
    await worker.start();
    const clientTransport = createSqliteTransport(url);
    await clientTransport.connect();
    const client = await createClient({ transport: clientTransport });
    try {
      const big = await client.send("t.big");
      const cyc = await client.send("t.cyclic");
      const fine = await client.send("t.fine");
      expect(await fine.get({ timeout: 10 })).toEqual({ ok: 1 });
      await expect(big.get({ timeout: 10 })).rejects.toMatchObject({ message: expect.stringMatching(/^result is not JSON-serializable \(Do not know how to serialize a BigInt\)/) });
      await expect(cyc.get({ timeout: 10 })).rejects.toMatchObject({ message: expect.stringMatching(/^result is not JSON-serializable \(/) });
      await waitFor("both dead-lettered", async () => ((await transport.listDead()).length === 2 ? true : undefined), 5000);
      expect(runs).toBe(1);
      const about = (id: string) => lines.filter((l) => l.msg.includes(id)).map((l) => l.msg);
      expect(about(big.id).some((m) => / succeeded /.test(m))).toBe(false);
      expect(about(big.id).some((m) => /failed: NonRetryableError: result is not JSON-serializable/.test(m))).toBe(true);
      expect(about(cyc.id).some((m) => / succeeded /.test(m))).toBe(false);
    } finally {
      await client.close();
      await worker.stop();
      await transport.close();
    }
  });
});
