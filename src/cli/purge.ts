import { Command } from "commander";
import { UsageError } from "../errors.ts";
import { openBroker, type BrokerFlags } from "./dead.ts";
import { action } from "./errors.ts";

interface PurgeFlags extends BrokerFlags {
  dead?: boolean;
  yes?: boolean;
}

export function purgeCommand(): Command {
  return new Command("purge")
    .description("delete every waiting (ready and scheduled) task of a queue; running tasks are left alone")
    .argument("<queue>", "queue to empty")
    .option("--dead", "also delete the queue's dead-lettered tasks")
    .option("--yes", "confirm: purging cannot be undone")
    .option("--broker <url>", "broker URL (overrides config and QWORKER_BROKER_URL)")
    .option("--config <path>", "config file (default config/qworker.yaml)")
    .addHelpText("after", `\nExample:\n  $ qworker purge emails --yes\n  $ qworker purge emails --dead --yes`)
    .action(
      action(async (queue: string, flags: PurgeFlags) => {
        // No interactive prompt: a command that deletes tasks must say so on its command line, also in scripts.
        if (!flags.yes) throw new UsageError(`purge deletes the waiting tasks of queue ${queue} for good: add --yes to confirm`);
        const transport = await openBroker(flags);
        try {
          const n = await transport.purge(queue, { dead: flags.dead ?? false });
          process.stdout.write(`purged ${n} task(s) from queue ${queue}${flags.dead ? " (dead-letter included)" : ""}\n`);
        } finally {
          await transport.close();
        }
      }),
    );
}
