import type { ChalkInstance } from "chalk";
import { Command } from "commander";
import { createTransport, transportOptions } from "../broker/factory.ts";
import type { Transport } from "../broker/transport.ts";
import { loadConfig } from "../config/load.ts";
import { ResultTimeoutError } from "../errors.ts";
import { decodeResult, type TaskResult } from "../results/record.ts";
import { taskStatus, type TaskStatus } from "../results/status.ts";
import { action } from "./errors.ts";
import { colorFor, duration, isoTime, progressText, relative } from "./inspect/format.ts";
import { parseNumberOption, requiredBesideWait } from "./json-option.ts";

/** `--wait` given without a number waits this long (a day: longer than any sensible result_expires wait). */
export const WAIT_FOREVER_SEC = 86_400;

interface ResultFlags {
  wait?: string | boolean;
  json?: boolean;
  celery?: boolean;
  broker?: string;
  config?: string;
}

export function resultCommand(): Command {
  return new Command("result")
    .description("show a task's state and result (or error); with --wait, exit 0 on success, 1 on failure, 124 on timeout")
    // Optional for commander only, so that an id taken by --wait gets a message saying so.
    .argument("[id]", "task id, as printed by `qworker send`")
    .usage("<id> [options]")
    .option("--wait [seconds]", "wait for the task to finish (default: a day)")
    .option("--json", "print the state record as one JSON object")
    .option("--celery", "read a Celery result (celery-task-meta-<id>), e.g. of a task sent with send --celery")
    .option("--broker <url>", "broker URL (overrides config and QWORKER_BROKER_URL)")
    .option("--config <path>", "config file (default config/qworker.yaml)")
    .addHelpText("after", `\nExample:\n  $ qworker result 6f1c2d4e-…\n  $ qworker result 6f1c2d4e-… --wait 10 --json | jq .result`)
    .action(
      action(async (idArg: string | undefined, flags: ResultFlags) => {
        const id = requiredBesideWait(idArg, flags.wait, "task id", "qworker result <id> --wait 10");
        if (flags.celery) return (await import("../celery/cli.ts")).celeryResult(id, flags);
        const waitSec = parseWait(flags.wait);
        const { config } = loadConfig({ ...(flags.config ? { configPath: flags.config } : {}), overrides: { broker_url: flags.broker } });
        const transport = await createTransport(config.broker_url, transportOptions(config, { failFast: true, mustExist: true }));
        await transport.connect();
        let code = 0;
        try {
          let status: TaskStatus;
          if (waitSec === undefined) {
            status = await taskStatus(transport, id);
            // As `result --celery` and `--wait` do: a script can tell a task that ended badly from its exit code.
            code = status.state === "FAILURE" || status.state === "REVOKED" || status.state === "EXPIRED" ? 1 : 0;
          } else {
            const done = await waitFinal(transport, id, waitSec);
            if (!done) {
              const now = await taskStatus(transport, id);
              if (flags.json) process.stdout.write(`${JSON.stringify(now)}\n`);
              throw new ResultTimeoutError(id, waitSec * 1000);
            }
            status = done;
            code = done.state === "SUCCESS" ? 0 : 1;
          }
          process.stdout.write(flags.json ? `${JSON.stringify(status)}\n` : renderStatus(status, Date.now(), colorFor()));
        } finally {
          await transport.close();
        }
        process.exitCode = code;
      }),
    );
}

/** Parse `--wait [seconds]`: absent → undefined, bare flag → a day. */
export function parseWait(raw: string | boolean | undefined): number | undefined {
  if (raw === undefined || raw === false) return undefined;
  if (raw === true) return WAIT_FOREVER_SEC;
  return parseNumberOption(raw, "--wait", { min: 0 });
}

/** The final record, or null on timeout. Woken by the transport (pub/sub on Redis), not by polling here. */
export async function waitFinal(transport: Transport, id: string, waitSec: number): Promise<TaskResult | null> {
  const raw = await transport.waitForResult(id, waitSec * 1000);
  return raw === null ? null : decodeResult(raw);
}

/** One line naming what went wrong, for stderr. */
export function failureLine(r: TaskResult): string {
  const what = `task ${r.task ?? "?"}[${r.id}]`;
  if (r.state === "FAILURE" && r.error) return `${what} failed: ${r.error.type}: ${r.error.message.split("\n")[0]}`;
  return `${what} ended ${r.state}`;
}

export function renderStatus(s: TaskStatus, now: number, c: ChalkInstance): string {
  const stateColor = s.state === "SUCCESS" ? c.green : s.state === "FAILURE" ? c.red : s.state === "STARTED" ? c.cyan : c.yellow;
  const rows: [string, string | undefined][] = [
    ["id", s.id],
    ["state", stateColor(s.state)],
    ["task", s.task],
    ["queue", s.queue],
    ["args", s.argsPreview],
    ["attempts", s.retries !== undefined ? String(s.retries + 1) : undefined],
    ["worker", s.worker],
    ["sent", s.sentAt ? isoTime(s.sentAt) : undefined],
    ["due", s.dueAt ? `${isoTime(s.dueAt)} (${relative(s.dueAt, now)})` : undefined],
    ["started", s.startedAt ? isoTime(s.startedAt) : undefined],
    ["finished", s.finishedAt ? isoTime(s.finishedAt) : undefined],
    ["runtime", s.runtimeMs !== undefined ? duration(s.runtimeMs) : s.state === "STARTED" && s.startedAt ? `${duration(now - s.startedAt)} so far` : undefined],
    ["progress", s.progress ? progressText(s.progress) : undefined],
    ["dead", s.deadReason],
  ];
  if (s.state === "SUCCESS") rows.push(["result", JSON.stringify(s.result) ?? "undefined"]);
  if (s.error) rows.push(["error", c.red(`${s.error.type}: ${s.error.message}`)]);
  const lines = rows.filter((r): r is [string, string] => r[1] !== undefined).map(([k, v]) => `${c.dim(`${k}:`.padEnd(10))}${v}`);
  if (s.error?.stack) lines.push(c.dim(s.error.stack.split("\n").slice(1).join("\n")));
  return `${lines.join("\n")}\n`;
}
