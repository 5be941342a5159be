import { Command } from "commander";
import { createTransport, transportOptions } from "../broker/factory.ts";
import { loadConfig } from "../config/load.ts";
import { UsageError } from "../errors.ts";
import { action } from "./errors.ts";
import { colorFor } from "./inspect/format.ts";
import { watchLoop } from "./inspect/watch.ts";
import {
  activeView,
  deadView,
  eventsView,
  queuesView,
  scheduledView,
  statsView,
  workersView,
  type View,
  type ViewOptions,
} from "./inspect/views.ts";
import { parseNumberOption } from "./json-option.ts";

interface InspectFlags {
  json?: boolean;
  watch?: string | boolean;
  config?: string;
  broker?: string;
  limit?: string;
  queue?: string;
  minutes?: string;
}

interface Spec {
  name: string;
  description: string;
  example: string;
  view: (o: ViewOptions) => View<unknown>;
  extra?: (cmd: Command) => Command;
}

const SPECS: Spec[] = [
  { name: "queues", description: "tasks per queue: ready, delayed, active, dead (the default)", example: "qworker inspect queues --watch", view: () => queuesView() as View<unknown> },
  {
    name: "workers",
    description: "live workers: host, pid, pool, concurrency, uptime, tasks processed (succeeded, failed), load",
    example: "qworker inspect workers --json | jq '.workers[].pid'",
    view: () => workersView() as View<unknown>,
  },
  {
    name: "active",
    description: "running tasks with their runtime so far and progress",
    example: "qworker inspect active --watch 1",
    view: (o) => activeView(o) as View<unknown>,
    extra: (c) => c.option("--limit <n>", "show at most n tasks", "100"),
  },
  {
    name: "scheduled",
    description: "delayed tasks (countdown, eta, retry backoff) with their due time",
    example: "qworker inspect scheduled --limit 20",
    view: (o) => scheduledView(o) as View<unknown>,
    extra: (c) => c.option("--limit <n>", "show at most n tasks", "100"),
  },
  {
    name: "dead",
    description: "dead-lettered tasks with the reason",
    example: "qworker inspect dead --queue emails",
    view: (o) => deadView(o) as View<unknown>,
    extra: (c) => c.option("--limit <n>", "show at most n tasks", "100").option("--queue <name>", "only this queue"),
  },
  {
    name: "stats",
    description: "throughput, failure rate and mean runtime per task over the last minutes",
    example: "qworker inspect stats --minutes 15",
    view: (o) => statsView(o) as View<unknown>,
    extra: (c) => c.option("--minutes <n>", "window, 1 to 60 minutes", "5"),
  },
  {
    name: "events",
    description: "the latest task events from the events stream (docs/events.md)",
    example: "qworker inspect events --limit 50",
    view: (o) => eventsView(o) as View<unknown>,
    extra: (c) => c.option("--limit <n>", "show the latest n events", "30"),
  },
];

export function inspectCommand(): Command {
  const root = new Command("inspect")
    .description("show what is happening: queues (default), workers, active, scheduled, dead, stats, events")
    // The options belong to the views (queues is the default one), so commander lists none here.
    .addHelpText(
      "after",
      `\nEvery view takes --json, --watch [seconds], --broker <url> and --config <path>; some take --limit, --queue or\n--minutes: see qworker inspect <view> --help.\n\nExamples:\n  $ qworker inspect\n  $ qworker inspect workers --json\n  $ qworker inspect active --watch`,
    );
  for (const spec of SPECS) root.addCommand(subcommand(spec), spec.name === "queues" ? { isDefault: true } : {});
  return root;
}

function subcommand(spec: Spec): Command {
  let cmd = new Command(spec.name)
    .description(spec.description)
    .option("--json", "print JSON on stdout (one object; one per refresh with --watch)")
    .option("--watch [seconds]", "refresh in place every few seconds (default 2); q or Ctrl-C quits")
    .option("--broker <url>", "broker URL (overrides config and QWORKER_BROKER_URL)")
    .option("--config <path>", "config file (default config/qworker.yaml)")
    .addHelpText("after", `\nExample:\n  $ ${spec.example}`);
  cmd = spec.extra ? spec.extra(cmd) : cmd;
  // `inspect bogus` reaches the default view as an extra argument: let it through to say what views exist,
  // rather than commander's "too many arguments for 'queues'".
  if (spec.name === "queues") cmd.allowExcessArguments();
  // Usage errors exit 2 like everywhere else (main.ts does this for top-level commands only).
  cmd.exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));
  return cmd.action(
    action(async (flags: InspectFlags, self: Command) => {
      const extra = self.args[0];
      if (extra !== undefined) throw new UsageError(`unknown view "${extra}": use one of ${SPECS.map((s) => s.name).join(", ")}, e.g. qworker inspect workers`);
      const opts: ViewOptions = {
        limit: parseNumberOption(flags.limit ?? "100", "--limit", { integer: true, min: 1, max: 100_000 }),
        minutes: parseNumberOption(flags.minutes ?? "5", "--minutes", { integer: true, min: 1, max: 60 }),
        ...(flags.queue ? { queue: flags.queue } : {}),
      };
      const watchSec = flags.watch === undefined ? undefined : flags.watch === true ? 2 : parseNumberOption(flags.watch as string, "--watch", { min: 0.2 });
      const { config } = loadConfig({ ...(flags.config ? { configPath: flags.config } : {}), overrides: { broker_url: flags.broker } });
      const view = spec.view(opts);
      const transport = await createTransport(config.broker_url, transportOptions(config, { failFast: true, mustExist: true }));
      await transport.connect();
      const c = colorFor({ json: flags.json === true });
      const frame = async () => {
        const now = Date.now();
        const data = await view.fetch(transport, now);
        return flags.json ? `${JSON.stringify(data)}\n` : view.render(data, now, c);
      };
      try {
        if (watchSec === undefined) process.stdout.write(await frame());
        else await watchLoop(frame, watchSec * 1000);
      } finally {
        await transport.close();
      }
    }),
  );
}
