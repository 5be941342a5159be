import { Command } from "commander";
import { createTransport, transportOptions } from "../broker/factory.ts";
import { loadConfig } from "../config/load.ts";
import { UsageError } from "../errors.ts";
import { action } from "./errors.ts";
import { parseNumberOption } from "./json-option.ts";

interface RevokeFlags {
  terminate?: boolean;
  ttl?: string;
  config?: string;
  broker?: string;
}

const DEFAULT_TTL_SEC = 86_400;

export function revokeCommand(): Command {
  return new Command("revoke")
    .description("revoke tasks: no worker starts them (stored in the broker, survives worker restarts)")
    .argument("<ids...>", "task ids")
    .option("--terminate", "also abort them where they are running (signal; in the process pool then a kill)")
    .option("--ttl <seconds>", `how long the revoke is kept (default ${DEFAULT_TTL_SEC})`)
    .option("--broker <url>", "broker URL (overrides config and QWORKER_BROKER_URL)")
    .option("--config <path>", "config file (default config/qworker.yaml)")
    .addHelpText("after", `\nExample:\n  $ qworker revoke 7f3c1a…\n  $ qworker revoke 7f3c1a… --terminate`)
    .action(
      action(async (ids: string[], flags: RevokeFlags) => {
        const bad = ids.find((id) => id.trim() === "" || id.length > 200);
        if (bad !== undefined) throw new UsageError(`invalid task id "${bad}": give the ids printed by qworker send`);
        const ttlSec = flags.ttl === undefined ? DEFAULT_TTL_SEC : parseNumberOption(flags.ttl, "--ttl", { min: 1 });
        const { config } = loadConfig({
          ...(flags.config ? { configPath: flags.config } : {}),
          overrides: { broker_url: flags.broker },
        });
        const transport = await createTransport(config.broker_url, transportOptions(config, { failFast: true, mustExist: true }));
        await transport.connect();
        try {
          const report = await transport.revoke(ids, ttlSec * 1000, flags.terminate === true);
          // The transport revoked a Celery message's lease id (`celery:…`, shown by inspect) as its Celery task id.
          const aliases = new Map(report?.aliases ?? []);
          for (const [lease, task] of aliases) process.stderr.write(`${lease} is Celery task ${task}: revoking that id\n`);
          ids = [...new Set(ids.map((id) => aliases.get(id) ?? id))];
        } finally {
          await transport.close();
        }
        const what = ids.length === 1 ? `task ${ids[0]}` : `${ids.length} tasks`;
        process.stderr.write(`revoked ${what} for ${ttlSec} s${flags.terminate ? "; running ones are being terminated" : ""}\n`);
      }),
    );
}
