import { z } from "zod";
import { retryPolicySchema } from "../config/schema.ts";
import { suggest } from "../config/suggest.ts";
import { plainZodMessage } from "../config/zod-words.ts";
import { QWorkerError } from "../errors.ts";
import type { TaskOptions } from "./definition.ts";
import { rateLimitInterval } from "./rate-limit-spec.ts";
import { timeLimitsProblem } from "./time-limits.ts";

/**
 * defineTask's options, checked where the task is defined: a JavaScript module (or a cast) can pass
 * anything, and a bad value found only when the task runs (a rateLimit of "lots" ran unlimited, with an
 * error in the log) or never (a retry.max of -1 meant no retries) is a bug found in production.
 */
const limit = z
  .number({ error: "expected a number of seconds" })
  .min(0, { error: "expected a number of seconds >= 0 (0 or unset: no limit)" });

const taskOptionsSchema = z
  .object({
    name: z.string({ error: "expected a string" }).trim().min(1, { error: 'must not be empty: a dotted name such as "shop.send_invoice_email"' }).optional(),
    queue: z.string({ error: "expected a string" }).trim().min(1, { error: "must not be empty: leave it unset for the default queue" }).optional(),
    priority: z.number({ error: "expected a number" }).int({ error: "expected an integer from 0 to 9" }).min(0, { error: "expected an integer from 0 to 9" }).max(9, { error: "expected an integer from 0 to 9" }).optional(),
    retry: z.union([z.literal(false), retryPolicySchema.partial()], { error: "expected false or { max, countdown, backoff, backoff_max, jitter }" }).optional(),
    retryOn: z.custom<(err: Error) => boolean>((v) => typeof v === "function", { error: "expected a function (err) => boolean" }).optional(),
    timeLimit: limit.optional(),
    softTimeLimit: limit.optional(),
    params: z.array(z.string(), { error: "expected a list of parameter names" }).optional(),
    ignoreResult: z.boolean({ error: "expected true or false" }).optional(),
    secretArgs: z.union([z.literal(true), z.array(z.union([z.number().int().min(0), z.string()]))], { error: "expected true, or a list of positions and keyword names" }).optional(),
    rateLimit: z
      .string({ error: 'expected a string such as "100/m"' })
      .refine((s) => rateLimitInterval(s) !== undefined, { error: 'expected N/s, N/m or N/h with N > 0, e.g. "100/m"' })
      .optional(),
  })
  .strict();

function shown(value: unknown): string {
  if (typeof value === "function") return "a function";
  if (typeof value === "number" || value === undefined) return String(value);
  return JSON.stringify(value) ?? String(value);
}

/** The options as given, or an E_TASK_DEFINITION error naming the task, the option and the fix. */
export function checkTaskOptions(options: TaskOptions): TaskOptions {
  const label = `task ${typeof options.name === "string" && options.name.trim() ? options.name : "(unnamed)"}`;
  const parsed = taskOptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    if (issue.code === "unrecognized_keys") {
      const at = issue.path.map(String);
      const typo = issue.keys[0] ?? "";
      // A misspelt option (timelimit, rate_limit, retry.backof) names the one meant, as config keys do.
      const known = Object.keys(at[0] === "retry" ? retryPolicySchema.shape : taskOptionsSchema.shape);
      const meant = suggest(typo, known) ?? known.find((k) => k.toLowerCase() === typo.toLowerCase().replace(/_/g, ""));
      const hint = meant ? `did you mean "${[...at, meant].join(".")}"? ` : "";
      throw new QWorkerError("E_TASK_DEFINITION", `${label}: unknown option "${[...at, typo].join(".")}" (${hint}see the task options in the README)`);
    }
    let found: unknown = options;
    for (const part of issue.path) found = (found as Record<PropertyKey, unknown> | undefined)?.[part];
    const what = plainZodMessage(issue.message);
    throw new QWorkerError("E_TASK_DEFINITION", `${label}: option ${issue.path.map(String).join(".")}: ${what}, found ${shown(found)}`);
  }
  // 0 is no limit (as in the config and `send --time-limit 0`), so it bounds nothing.
  const limits = timeLimitsProblem(options.softTimeLimit || undefined, options.timeLimit || undefined);
  if (limits) throw new QWorkerError("E_TASK_DEFINITION", `${label}: ${limits}`);
  return options;
}
