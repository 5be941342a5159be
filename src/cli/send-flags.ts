import { UsageError } from "../errors.ts";
import { MAX_TIME_LIMIT_SEC, softLimitProblem } from "../tasks/time-limits.ts";
import { parseEtaOption, parseExpiresOption, parseJsonOption, parseNumberOption } from "./json-option.ts";

/** `qworker send`'s flags, as commander gives them (the same for a qworker and a Celery message). */
export interface SendFlags {
  args?: string;
  kwargs?: string;
  queue?: string;
  countdown?: string;
  eta?: string;
  priority?: string;
  expires?: string;
  timeLimit?: string;
  softTimeLimit?: string;
  uniqueKey?: string;
  uniqueFor?: string;
  id?: string;
  config?: string;
  broker?: string;
  wait?: string | boolean;
  celery?: boolean;
}

/** The send options both kinds of message take, checked in the words of their flags. */
export interface CommonSendOptions {
  kwargs?: Record<string, unknown>;
  queue?: string;
  countdown?: number;
  eta?: string;
  priority?: number;
  expires?: number | string;
  timeLimit?: number;
  softTimeLimit?: number;
  id?: string;
}

export function parseCommonSendFlags(flags: SendFlags): CommonSendOptions {
  const o: CommonSendOptions = {};
  if (flags.kwargs !== undefined) o.kwargs = parseJsonOption(flags.kwargs, "--kwargs", "object");
  if (flags.queue !== undefined) o.queue = flags.queue;
  if (flags.countdown !== undefined && flags.eta !== undefined) throw new UsageError("give either --countdown or --eta, not both");
  if (flags.countdown !== undefined) o.countdown = parseNumberOption(flags.countdown, "--countdown", { min: 0 });
  if (flags.eta !== undefined) o.eta = parseEtaOption(flags.eta);
  if (flags.priority !== undefined) o.priority = parseNumberOption(flags.priority, "--priority", { integer: true, min: 0, max: 9 });
  if (flags.expires !== undefined) o.expires = parseExpiresOption(flags.expires);
  // Above 0: a message's limit replaces the task's, and a message cannot say "no limit".
  if (flags.timeLimit !== undefined) o.timeLimit = parseNumberOption(flags.timeLimit, "--time-limit", { above: 0, max: MAX_TIME_LIMIT_SEC });
  if (flags.softTimeLimit !== undefined) o.softTimeLimit = parseNumberOption(flags.softTimeLimit, "--soft-time-limit", { above: 0, max: MAX_TIME_LIMIT_SEC });
  if (softLimitProblem(o.softTimeLimit, o.timeLimit)) {
    throw new UsageError(`--soft-time-limit (${o.softTimeLimit}) must be below --time-limit (${o.timeLimit}): the soft limit warns the task before the hard one stops it`);
  }
  if (flags.id !== undefined) {
    if (flags.id.trim() === "") throw new UsageError("--id: expected a task id, found an empty string");
    o.id = flags.id;
  }
  return o;
}
