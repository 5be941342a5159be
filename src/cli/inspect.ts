import Table from "cli-table3";
import { Command } from "commander";
import { createTransport } from "../broker/factory.ts";
import type { QueueCounts, WorkerInfo } from "../broker/transport.ts";
import { loadConfig } from "../config/load.ts";
import { action } from "./errors.ts";

interface InspectFlags {
  json?: boolean;
  config?: string;
  broker?: string;
}

export function inspectCommand(): Command {
  return new Command("inspect")
    .description("show queue depths and live workers")
    .option("--json", "print one JSON object on stdout")
    .option("--broker <url>", "broker URL (overrides config and QWORKER_BROKER_URL)")
    .option("--config <path>", "config file (default config/qworker.yaml)")
    .addHelpText("after", `\nExample:\n  $ qworker inspect\n  $ qworker inspect --json | jq '.queues'`)
    .action(
      action(async (flags: InspectFlags) => {
        const { config } = loadConfig({
          ...(flags.config ? { configPath: flags.config } : {}),
          overrides: { broker_url: flags.broker },
        });
        const transport = await createTransport(config.broker_url, { failFast: true, redisPrefix: config.redis_prefix });
        await transport.connect();
        try {
          const [queues, workers] = await Promise.all([transport.stats(), transport.workers()]);
          if (flags.json) process.stdout.write(`${JSON.stringify({ queues, workers })}\n`);
          else process.stdout.write(renderTables(queues, workers));
        } finally {
          await transport.close();
        }
      }),
    );
}

export function renderTables(queues: QueueCounts[], workers: WorkerInfo[]): string {
  const q = new Table({ head: ["queue", "ready", "delayed", "active", "dead"], style: { head: [], border: [] } });
  for (const c of queues) q.push([c.name, c.ready, c.delayed, c.active, c.dead]);
  const w = new Table({ head: ["worker", "host", "pid", "concurrency", "active", "processed", "failed", "started"], style: { head: [], border: [] } });
  for (const x of workers) {
    w.push([x.id, x.host, x.pid, x.concurrency, x.active, x.processed, x.failed, new Date(x.startedAt).toISOString()]);
  }
  const qs = queues.length > 0 ? q.toString() : "no queues yet";
  const ws = workers.length > 0 ? w.toString() : "no live workers";
  return `Queues\n${qs}\n\nWorkers\n${ws}\n`;
}
