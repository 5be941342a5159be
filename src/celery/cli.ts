import { ResultTimeoutError, UsageError } from "../errors.ts";
import { isoTime } from "../cli/inspect/format.ts";
import { parseJsonOption } from "../cli/json-option.ts";
import { parseCommonSendFlags, type SendFlags } from "../cli/send-flags.ts";
import { parseWait } from "../cli/result.ts";
import type { DecodedCeleryResult } from "../protocol/celery/index.ts";
import { createCeleryClient, type CeleryClientOptions, type CelerySendCallOptions } from "./client.ts";

/**
 * The `--celery` paths of `qworker send` and `qworker result`: write a Celery protocol v2 message that a
 * Celery worker executes, and read a `celery-task-meta-<id>` result. Output follows the qworker paths:
 * the id on stdout, the value as JSON, failures as one line on stderr with exit code 1, 124 on timeout.
 */


export interface CeleryResultFlags {
  wait?: string | boolean;
  json?: boolean;
  broker?: string;
  config?: string;
}


function clientOptions(flags: { broker?: string; config?: string }): CeleryClientOptions {
  return { ...(flags.broker ? { brokerUrl: flags.broker } : {}), ...(flags.config ? { configPath: flags.config } : {}) };
}

export function sendOptionsFromFlags(flags: SendFlags): CelerySendCallOptions {
  // Celery messages carry no unique key: silently sending duplicates would be worse than saying so.
  if (flags.uniqueKey !== undefined || flags.uniqueFor !== undefined) {
    throw new UsageError(`${flags.uniqueKey !== undefined ? "--unique-key" : "--unique-for"} is not available with --celery: Celery messages have no unique key (use --id to name the task instead)`);
  }
  return parseCommonSendFlags(flags);
}

/** One line naming what a Celery task ended with, for stderr. */
export function celeryFailureLine(id: string, r: DecodedCeleryResult): string {
  const e = r.error;
  if (!e) return `celery task ${id} ended ${r.state}`;
  return `celery task ${id} ${r.state === "REVOKED" ? "was revoked" : "failed"}: ${e.pythonClass}: ${e.message.split("\n")[0]}`;
}

function asJson(id: string, r: DecodedCeleryResult | null): Record<string, unknown> {
  if (!r) return { id, state: "PENDING" };
  const out: Record<string, unknown> = { id, state: r.state, ready: r.ready };
  if (r.error) out["error"] = { type: r.error.excType, module: r.error.excModule, args: r.error.args, traceback: r.traceback ?? null };
  else out["result"] = r.result ?? null;
  if (r.dateDone !== undefined) out["dateDone"] = isoTime(r.dateDone);
  return out;
}

export async function celerySend(task: string, flags: SendFlags): Promise<void> {
  const args = parseJsonOption(flags.args ?? "[]", "--args", "array");
  const options = sendOptionsFromFlags(flags);
  const waitSec = parseWait(flags.wait);
  const client = await createCeleryClient(clientOptions(flags));
  try {
    const ref = await client.send(task, args, options);
    process.stdout.write(`${ref.id}\n`);
    if (waitSec === undefined) return;
    const r = await ref.wait({ timeout: waitSec });
    if (r.state === "SUCCESS") process.stdout.write(`${JSON.stringify(r.result) ?? "null"}\n`);
    else {
      process.stderr.write(`${celeryFailureLine(ref.id, r)}\n`);
      process.exitCode = 1;
    }
  } finally {
    await client.close();
  }
}

export async function celeryResult(id: string, flags: CeleryResultFlags): Promise<void> {
  if (id.trim() === "") throw new UsageError("give the Celery task id, e.g. qworker result --celery 6f1c2d4e-…");
  const waitSec = parseWait(flags.wait);
  const client = await createCeleryClient(clientOptions(flags));
  try {
    const ref = client.result(id);
    let r: DecodedCeleryResult | null;
    if (waitSec === undefined) r = await ref.state();
    else {
      try {
        r = await ref.wait({ timeout: waitSec });
      } catch (err) {
        if (err instanceof ResultTimeoutError && flags.json) process.stdout.write(`${JSON.stringify(asJson(id, await ref.state()))}\n`);
        throw err;
      }
    }
    if (flags.json) process.stdout.write(`${JSON.stringify(asJson(id, r))}\n`);
    else if (!r) process.stdout.write(`${id}: PENDING (no result stored yet, or it expired)\n`);
    else if (r.state === "SUCCESS") process.stdout.write(`${id}: SUCCESS\n${JSON.stringify(r.result) ?? "null"}\n`);
    else process.stdout.write(`${id}: ${r.state}${r.error ? `\n${r.error.pythonClass}: ${r.error.message}` : ""}\n`);
    if (r && (r.state === "FAILURE" || r.state === "REVOKED")) process.exitCode = 1;
  } finally {
    await client.close();
  }
}
