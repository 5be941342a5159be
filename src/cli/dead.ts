import Table from "cli-table3";
import { Command } from "commander";
import { createTransport, transportOptions } from "../broker/factory.ts";
import type { DeadTask, Transport } from "../broker/transport.ts";
import { loadConfig } from "../config/load.ts";
import { action } from "./errors.ts";
import { idCell, isoTime, peekPayload } from "./inspect/format.ts";
import { deadRows } from "./inspect/views.ts";
import { parseNumberOption } from "./json-option.ts";

export interface BrokerFlags {
  config?: string;
  broker?: string;
}

/**
 * Open the configured broker for a one-shot command on tasks already sent: it fails fast instead of
 * waiting for an outage, and never creates an embedded broker (an empty one would only hide the real one).
 */
export async function openBroker(flags: BrokerFlags): Promise<Transport> {
  const { config } = loadConfig({
    ...(flags.config ? { configPath: flags.config } : {}),
    overrides: { broker_url: flags.broker },
  });
  const transport = await createTransport(config.broker_url, transportOptions(config, { failFast: true, mustExist: true }));
  await transport.connect();
  return transport;
}

interface DeadFlags extends BrokerFlags {
  queue?: string;
  json?: boolean;
  limit?: string;
}

export function deadCommand(): Command {
  return new Command("dead")
    .description("list dead-lettered tasks: id, queue, task, reason, error, when")
    .option("--queue <name>", "only this queue")
    .option("--limit <n>", "most tasks to list", "100")
    .option("--json", "one JSON object per line on stdout")
    .option("--broker <url>", "broker URL (overrides config and QWORKER_BROKER_URL)")
    .option("--config <path>", "config file (default config/qworker.yaml)")
    .addHelpText("after", `\nExample:\n  $ qworker dead --queue emails\n  $ qworker dead --json | jq -r .id`)
    .action(
      action(async (flags: DeadFlags) => {
        const limit = parseNumberOption(flags.limit ?? "100", "--limit", { integer: true, min: 1 });
        const transport = await openBroker(flags);
        try {
          const dead = await transport.listDead(flags.queue, limit);
          if (flags.json) {
            // The rows of `inspect dead --json`, so both commands (and every other --json) give times as epoch ms.
            for (const row of deadRows(dead)) process.stdout.write(`${JSON.stringify(row)}\n`);
          } else {
            process.stdout.write(renderDead(dead, flags.queue));
          }
        } finally {
          await transport.close();
        }
      }),
    );
}

export function renderDead(dead: DeadTask[], queue?: string): string {
  if (dead.length === 0) return `no dead-lettered tasks${queue ? ` in queue ${queue}` : ""}\n`;
  const table = new Table({ head: ["id", "queue", "task", "reason", "error", "when"], style: { head: [], border: [] }, wordWrap: true, colWidths: [null, null, null, 50, 30, null] });
  for (const d of dead) {
    const { task, celeryId } = peekPayload(d.payload);
    table.push([idCell(d.id, celeryId), d.queue, task ?? "?", d.reason, d.error ?? "", isoTime(d.deadAt)]);
  }
  return `${table.toString()}\n${dead.length} dead-lettered task(s); put them back with: qworker requeue ID | --all\n`;
}
