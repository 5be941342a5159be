import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { RedisConnection } from "./connection.ts";

/**
 * The Lua scripts, read once at start-up and run by SHA. A Redis restart (or failover) empties the script
 * cache; the first call after it answers NOSCRIPT and we resend the source once, so callers never see it.
 */
const NAMES = [
  "enqueue",
  "reserve",
  "settle",
  "retry",
  "release",
  "extend",
  "extend_worker",
  "recover",
  "dead_letter",
  "requeue_dead",
  "purge",
  "heartbeat",
  "revoke",
  "celery_claim",
  "celery_settle",
  "celery_retry",
  "celery_store",
  "rate_limit",
  "counters",
] as const;

export type ScriptName = (typeof NAMES)[number];

interface Script {
  source: string;
  sha: string;
}

/**
 * A script's source with each `--#include NAME` line replaced by lua/lib/NAME.lua: helpers that several
 * scripts share (Redis runs each script alone, so sharing happens here, before the SHA is taken).
 */
function readScript(name: string): string {
  const text = readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");
  return text.replace(/^--#include (\w+)$/gm, (_, lib: string) => readFileSync(new URL(`./lua/lib/${lib}.lua`, import.meta.url), "utf8").trimEnd());
}

const scripts = new Map<ScriptName, Script>(
  NAMES.map((name) => {
    const source = readScript(name);
    return [name, { source, sha: createHash("sha1").update(source).digest("hex") }];
  }),
);

/**
 * Call `send` with the script's SHA, and once more with its source if Redis answers NOSCRIPT (a restart
 * or failover emptied its script cache). `args[0]` is always the key prefix (every script takes it first
 * and builds its keys from it). `routeKey`, a key under that prefix, goes as KEYS[1]: the scripts never
 * read it, but Redis Cluster routes a script by its keys, so every script goes to the node that holds the
 * prefix's hash slot (where all of qworker's keys are, see RedisTransport). On a single Redis it changes
 * nothing.
 */
async function bySha<T>(name: ScriptName, args: (string | number)[], send: (body: string, bySource: boolean, routeKey: string) => Promise<T>): Promise<T> {
  const script = scripts.get(name)!;
  const routeKey = routeKeyOf(args);
  try {
    return await send(script.sha, false, routeKey);
  } catch (err) {
    if (err instanceof Error && err.message.startsWith("NOSCRIPT")) return await send(script.source, true, routeKey);
    throw err;
  }
}

/** The key a script call is routed by: one under the call's prefix (`args[0]`), see bySha. */
function routeKeyOf(args: (string | number)[]): string {
  return `${args[0]}queues`;
}

/** Run a script (see bySha for its arguments). */
export function runScript(redis: RedisConnection, name: ScriptName, args: (string | number)[]): Promise<unknown> {
  return bySha(name, args, (body, bySource, routeKey) =>
    bySource ? redis.eval(body, 1, routeKey, ...args) : redis.evalsha(body, 1, routeKey, ...args),
  );
}

/** One script call's outcome in a pipeline. */
export type ScriptReply = { value: unknown } | { error: Error };

/**
 * Run a script once per argument list, then WAIT for `replicas` replicas, all in one pipeline. WAIT counts
 * the replicas that have every write made so far on the connection it is sent on, so it must follow the
 * scripts on the connection that ran them: a pipeline keeps them on one connection, and on Redis Cluster
 * sends them to the node their key routes to (see bySha). Answers each call's reply or error, in order, and
 * how many replicas confirmed all of them. Calls answered NOSCRIPT (a restart or failover emptied the
 * script cache) go again with the source, in a second pipeline whose WAIT then counts for every call.
 */
export async function runScriptsReplicated(
  redis: RedisConnection,
  name: ScriptName,
  argLists: (string | number)[][],
  replicas: number,
  timeoutMs: number,
): Promise<{ replies: ScriptReply[]; confirmed: number }> {
  const script = scripts.get(name)!;
  const send = async (indexes: number[], bySource: boolean): Promise<number> => {
    const pipe = redis.pipeline();
    for (const i of indexes) {
      const args = argLists[i]!;
      const routeKey = routeKeyOf(args);
      if (bySource) pipe.eval(script.source, 1, routeKey, ...args);
      else pipe.evalsha(script.sha, 1, routeKey, ...args);
    }
    pipe.wait(replicas, timeoutMs);
    const out = (await pipe.exec()) ?? [];
    indexes.forEach((i, k) => {
      const [err, value] = out[k] ?? [new Error("no reply to the script")];
      replies[i] = err ? { error: err } : { value };
    });
    const [waitErr, confirmed] = out[indexes.length] ?? [new Error("no reply to WAIT")];
    if (waitErr) throw waitErr;
    return Number(confirmed);
  };
  const replies: ScriptReply[] = [];
  let confirmed = await send(argLists.map((_, i) => i), false);
  const missing = replies.flatMap((r, i) => ("error" in r && r.error.message.startsWith("NOSCRIPT") ? [i] : []));
  if (missing.length > 0) confirmed = await send(missing, true);
  return { replies, confirmed };
}
