import { Command } from "commander";
import { createTransport, transportOptions } from "../broker/factory.ts";
import { checkTaskName } from "../client/build-message.ts";
import { createClient } from "../client/client.ts";
import type { SendOptions } from "../client/types.ts";
import { loadConfig } from "../config/load.ts";
import { ResultTimeoutError, UsageError } from "../errors.ts";
import { action } from "./errors.ts";
import { parseJsonOption, parseNumberOption, requiredBesideWait } from "./json-option.ts";
import { parseCommonSendFlags, type SendFlags } from "./send-flags.ts";
import { failureLine, parseWait, waitFinal } from "./result.ts";


export function sendCommand(): Command {
  return new Command("send")
    .description("enqueue a task and print its id")
    // Optional for commander only, so that a name taken by --wait gets a message saying so.
    .argument("[task]", "task name, e.g. shop.send_invoice_email")
    .usage("<task> [options]")
    .option("--args <json>", "positional arguments as a JSON array", "[]")
    .option("--kwargs <json>", "keyword arguments as a JSON object")
    .option("--queue <name>", "queue to send to (default: its task_routes entry, else default_queue)")
    .option("--countdown <seconds>", "run no earlier than this many seconds from now")
    .option("--eta <iso8601>", "run no earlier than this time")
    .option("--priority <0-9>", "higher runs first")
    .option("--expires <seconds|iso8601>", "discard if not started by then")
    .option("--time-limit <seconds>", "hard time limit")
    .option("--soft-time-limit <seconds>", "soft time limit")
    .option("--unique-key <key>", "return the queued task's id instead of sending a duplicate")
    .option("--unique-for <seconds>", "hold the unique key at most this long")
    .option("--id <task-id>", "use this task id instead of a new UUID (a task with this id still queued or running is not sent again)")
    .option("--broker <url>", "broker URL (overrides config and QWORKER_BROKER_URL)")
    .option("--config <path>", "config file (default config/qworker.yaml)")
    .option("--celery", "send a Celery message (protocol v2 on kombu's Redis list) for Celery workers; see docs/celery.md")
    .option("--wait [seconds]", "then wait for the result and print it as JSON (exit 1 if the task fails, 124 on timeout)")
    .addHelpText("after", `\nExample:\n  $ qworker send shop.send_invoice_email --args '[1234]'\n  $ qworker send demo.add --args '[2, 3]' --countdown 2\n  $ qworker send demo.add --args '[2, 3]' --wait 5`)
    .action(
      action(async (taskArg: string | undefined, flags: SendFlags) => {
        const task = requiredBesideWait(taskArg, flags.wait, "task name", "qworker send demo.add --args '[2, 3]' --wait 5");
        // Checked before --celery branches off and before the broker is opened: it is bad whichever way it goes.
        checkTaskName(task);
        if (flags.celery) return (await import("../celery/cli.ts")).celerySend(task, flags);
        const args = parseJsonOption(flags.args ?? "[]", "--args", "array");
        const waitSec = parseWait(flags.wait);
        const options: SendOptions = parseCommonSendFlags(flags);
        if (flags.uniqueKey !== undefined) options.uniqueKey = flags.uniqueKey;
        if (flags.uniqueFor !== undefined) {
          if (flags.uniqueKey === undefined) throw new UsageError("--unique-for only bounds a unique key: add --unique-key KEY, or drop --unique-for");
          options.uniqueFor = parseNumberOption(flags.uniqueFor, "--unique-for", { min: 0 });
        }
        const { config } = loadConfig({ ...(flags.config ? { configPath: flags.config } : {}), overrides: { broker_url: flags.broker } });
        // Sending before any worker has started is fine, but the default embedded broker's path is relative,
        // so a new one may as well mean the wrong directory: say which file the task went to.
        const transport = await createTransport(config.broker_url, {
          ...transportOptions(config, { failFast: true }),
          onCreate: (file) =>
            process.stderr.write(
              `qworker: created a new embedded broker at ${file}; only a worker using this file runs the task (start one in this directory, or set broker_url / QWORKER_BROKER_URL)\n`,
            ),
        });
        await transport.connect();
        const client = await createClient({
          transport,
          ...(flags.broker ? { brokerUrl: flags.broker } : {}),
          ...(flags.config ? { configPath: flags.config } : {}),
        }).catch(async (err: unknown) => {
          await transport.close();
          throw err;
        });
        try {
          const ref = await client.send(task, args, options);
          process.stdout.write(`${ref.id}\n`);
          if (ref.duplicate) process.stderr.write(`task ${ref.id} was already queued or running; not sent again\n`);
          if (waitSec !== undefined) {
            const r = await waitFinal(client.transport, ref.id, waitSec);
            if (!r) throw new ResultTimeoutError(ref.id, waitSec * 1000);
            if (r.state === "SUCCESS") process.stdout.write(`${JSON.stringify(r.result) ?? "null"}\n`);
            else {
              process.stderr.write(`${failureLine(r)}\n`);
              process.exitCode = 1;
            }
          }
        } finally {
          await client.close();
        }
      }),
    );
}
