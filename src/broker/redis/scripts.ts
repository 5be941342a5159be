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
 * Run a script. `args[0]` is always the key prefix (every script takes it first and builds its keys from
 * it). The call also names one key under that prefix as KEYS[1]: the scripts never read it, but Redis
 * Cluster routes a script by its keys, so this sends every script to the node that holds the prefix's
 * hash slot (where all of qworker's keys are, see RedisTransport). On a single Redis it changes nothing.
 */
export async function runScript(redis: RedisConnection, name: ScriptName, args: (string | number)[]): Promise<unknown> {
  const script = scripts.get(name)!;
  const routeKey = `${args[0]}queues`;
  try {
    return await redis.evalsha(script.sha, 1, routeKey, ...args);
  } catch (err) {
    if (err instanceof Error && err.message.startsWith("NOSCRIPT")) {
      return await redis.eval(script.source, 1, routeKey, ...args);
    }
    throw err;
  }
}

/**
 * Run a script, then WAIT for `replicas` replicas in the same pipeline. WAIT counts the replicas that
 * have every write made so far on the connection it is sent on, so it must follow the script on the
 * connection that ran it: a pipeline keeps both on one connection, and on Redis Cluster sends both to the
 * node the script's key routes to. Answers the script's result and how many replicas confirmed.
 */
export async function runScriptReplicated(
  redis: RedisConnection,
  name: ScriptName,
  args: (string | number)[],
  replicas: number,
  timeoutMs: number,
): Promise<{ result: unknown; confirmed: number }> {
  const script = scripts.get(name)!;
  const routeKey = `${args[0]}queues`;
  const attempt = async (bySource: boolean): Promise<{ result: unknown; confirmed: number }> => {
    const pipe = redis.pipeline();
    if (bySource) pipe.eval(script.source, 1, routeKey, ...args);
    else pipe.evalsha(script.sha, 1, routeKey, ...args);
    pipe.wait(replicas, timeoutMs);
    const replies = (await pipe.exec()) ?? [];
    const [scriptErr, result] = replies[0] ?? [new Error("no reply to the script")];
    if (scriptErr) throw scriptErr;
    const [waitErr, confirmed] = replies[1] ?? [new Error("no reply to WAIT")];
    if (waitErr) throw waitErr;
    return { result, confirmed: Number(confirmed) };
  };
  try {
    return await attempt(false);
  } catch (err) {
    if (err instanceof Error && err.message.startsWith("NOSCRIPT")) return await attempt(true);
    throw err;
  }
}
