/**
 * A task that throws a message of megabytes: the worker's log lines for its retry and its failure carry
 * the message's start (an ellipsis and its length), not the whole of it, while the stored result keeps the
 * whole message. A 20 MB message made a 20 MB log line.
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

const dir = mkdtempSync(join(tmpdir(), "qw-error-log-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a task's error message of megabytes", () => {
  it("is cut in the worker's retry and failure log lines, and stored whole", async () => {
    const url = `sqlite://${join(dir, "b.db")}`;
    const config = { ...configSchema.parse({ broker_url: url, retry: { max: 1, countdown: 0.01 } }), broker_url: url };
    const message = `upstream said: ${"e".repeat(2 * 1024 * 1024)}`;
    const registry = new TaskRegistry();
    const task = defineTask({ name: "t.loud" }, () => {
      throw new Error(message);
    });
    registry.register(task.name!, task as never, "test");
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
      const ref = await client.send("t.loud");
      const err = await ref.get({ timeout: 10 }).then(() => undefined, (e: unknown) => e as Error);
      expect(err?.message).toBe(message);
      const about = lines.filter((l) => l.msg.includes(ref.id)).map((l) => l.msg);
      const cut = `upstream said: ${"e".repeat(300 - 15)}… (${message.length} characters)`;
      expect(about.filter((m) => / retry 1\/1 /.test(m))).toEqual([expect.stringContaining(cut)]);
      expect(about.filter((m) => / failed after 1 retries: /.test(m))).toEqual([expect.stringContaining(`Error: ${cut}`)]);
      for (const m of about) expect(m.length).toBeLessThan(1000);
    } finally {
      await client.close();
      await worker.stop();
      await transport.close();
    }
  });
});
