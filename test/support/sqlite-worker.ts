/**
 * A real Worker on a fresh embedded (SQLite) broker, in this process, with a client on its own connection
 * and the worker's log lines kept: for tests of what a worker does with a task's outcome.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { createClient, type Client } from "../../src/client/client.ts";
import { configSchema } from "../../src/config/schema.ts";
import type { TaskDefinition } from "../../src/tasks/definition.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";
import { Worker } from "../../src/worker/worker.ts";

export interface SqliteWorker {
  transport: Transport;
  worker: Worker;
  client: Client;
  /** Every log line the worker wrote so far (level and message). */
  lines: { level: number; msg: string }[];
  /** Log messages that mention this text (a task id). */
  about(text: string): string[];
  close(): Promise<void>;
}

export async function startSqliteWorker(tasks: TaskDefinition[], settings: Record<string, unknown> = {}): Promise<SqliteWorker> {
  const dir = mkdtempSync(join(tmpdir(), "qw-sqlite-worker-"));
  const url = `sqlite://${join(dir, "b.db")}`;
  const config = { ...configSchema.parse({ broker_url: url, ...settings }), broker_url: url };
  const registry = new TaskRegistry();
  for (const t of tasks) registry.register(t.name!, t, "test");
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: "info" }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  const transport = createSqliteTransport(url);
  await transport.connect();
  const worker = new Worker({ transport, registry, config, logger });
  await worker.start();
  const clientTransport = createSqliteTransport(url);
  await clientTransport.connect();
  const client = await createClient({ transport: clientTransport });
  return {
    transport,
    worker,
    client,
    lines,
    about: (text) => lines.filter((l) => l.msg.includes(text)).map((l) => l.msg),
    async close() {
      await client.close();
      await worker.stop();
      await transport.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
