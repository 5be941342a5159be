import { Command } from "commander";
import { UsageError } from "../errors.ts";
import { openBroker, type BrokerFlags } from "./dead.ts";
import { action } from "./errors.ts";

interface RequeueFlags extends BrokerFlags {
  all?: boolean;
  queue?: string;
}

export function requeueCommand(): Command {
  return new Command("requeue")
    .description("put dead-lettered tasks back on their queue, with a fresh delivery count")
    .argument("[ids...]", "ids of dead tasks (see qworker dead)")
    .option("--all", "every dead task (of --queue, or of every queue)")
    .option("--queue <name>", "only this queue")
    .option("--broker <url>", "broker URL (overrides config and QWORKER_BROKER_URL)")
    .option("--config <path>", "config file (default config/qworker.yaml)")
    .addHelpText("after", `\nExample:\n  $ qworker requeue 0b1c…\n  $ qworker requeue --all --queue emails`)
    .action(
      action(async (ids: string[], flags: RequeueFlags) => {
        if (flags.all && ids.length > 0) throw new UsageError("give task ids or --all, not both");
        if (!flags.all && ids.length === 0) throw new UsageError("nothing to requeue: give task ids (see qworker dead) or --all");
        const transport = await openBroker(flags);
        try {
          const n = await transport.requeueDead(flags.all ? "all" : ids, flags.queue);
          const asked = flags.all ? "" : ` of ${ids.length}`;
          process.stdout.write(`requeued ${n}${asked} task(s)\n`);
          if (!flags.all && n < ids.length) {
            process.stderr.write(`qworker: ${ids.length - n} id(s) were not in the dead-letter set${flags.queue ? ` of queue ${flags.queue}` : ""} (check qworker dead)\n`);
            process.exitCode = 1;
          }
        } finally {
          await transport.close();
        }
      }),
    );
}
