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
] as const;

export type ScriptName = (typeof NAMES)[number];

interface Script {
  source: string;
  sha: string;
}

const scripts = new Map<ScriptName, Script>(
  NAMES.map((name) => {
    const source = readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");
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
  const routeKey = `${args[0]}queues`;
  try {
    return await send(script.sha, false, routeKey);
  } catch (err) {
    if (err instanceof Error && err.message.startsWith("NOSCRIPT")) return await send(script.source, true, routeKey);
    throw err;
  }
}

/** Run a script (see bySha for its arguments). */
export function runScript(redis: RedisConnection, name: ScriptName, args: (string | number)[]): Promise<unknown> {
  return bySha(name, args, (body, bySource, routeKey) =>
    bySource ? redis.eval(body, 1, routeKey, ...args) : redis.evalsha(body, 1, routeKey, ...args),
  );
}

/**
 * Run a script, then WAIT for `replicas` replicas in the same pipeline. WAIT counts the replicas that
 * have every write made so far on the connection it is sent on, so it must follow the script on the
 * connection that ran it: a pipeline keeps both on one connection, and on Redis Cluster sends both to the
 * node the script's key routes to. Answers the script's result and how many replicas confirmed.
 */
export function runScriptReplicated(
  redis: RedisConnection,
  name: ScriptName,
  args: (string | number)[],
  replicas: number,
  timeoutMs: number,
): Promise<{ result: unknown; confirmed: number }> {
  return bySha(name, args, async (body, bySource, routeKey) => {
    const pipe = redis.pipeline();
    if (bySource) pipe.eval(body, 1, routeKey, ...args);
    else pipe.evalsha(body, 1, routeKey, ...args);
    pipe.wait(replicas, timeoutMs);
    const replies = (await pipe.exec()) ?? [];
    const [scriptErr, result] = replies[0] ?? [new Error("no reply to the script")];
    if (scriptErr) throw scriptErr;
    const [waitErr, confirmed] = replies[1] ?? [new Error("no reply to WAIT")];
    if (waitErr) throw waitErr;
    return { result, confirmed: Number(confirmed) };
  });
}
