import type { RedisConnection } from "./connection.ts";

/** The Redis settings that decide whether queued tasks survive memory pressure and restarts. */
export interface RedisSettings {
  maxmemoryPolicy?: string;
  appendonly?: boolean;
  /** RDB save points ("" when snapshots are off). */
  save?: string;
}

/**
 * One warning line per setting that can lose tasks. Pure, so it is tested without a server.
 * volatile-* policies only evict keys with a TTL: queued tasks have none, but results, unique-task locks
 * and worker heartbeats do, so they can go early.
 */
export function settingsWarnings(s: RedisSettings): string[] {
  const out: string[] = [];
  const policy = s.maxmemoryPolicy;
  if (policy && policy !== "noeviction") {
    out.push(
      policy.startsWith("allkeys")
        ? `Redis maxmemory-policy is ${policy}: when Redis fills up it deletes keys, including queued tasks; set maxmemory-policy noeviction`
        : `Redis maxmemory-policy is ${policy}: when Redis fills up it deletes keys with a TTL (results, unique locks, worker heartbeats) before they expire; noeviction is safer`,
    );
  }
  if (s.appendonly === false) {
    out.push(
      s.save === undefined || s.save.trim() === ""
        ? "Redis persistence is off (appendonly no, no save points): a Redis restart loses every queued task; set appendonly yes"
        : `Redis has only RDB snapshots (save ${s.save}): a crash loses tasks queued since the last snapshot; set appendonly yes to lose at most about a second`,
    );
  }
  return out;
}

/**
 * Read the settings with CONFIG GET, falling back to INFO where CONFIG is disabled (many managed Redis
 * services rename it). A setting that cannot be read is not warned about.
 */
export async function readRedisSettings(redis: RedisConnection): Promise<RedisSettings> {
  try {
    const pairs = (await redis.call("CONFIG", "GET", "maxmemory-policy", "appendonly", "save")) as string[];
    const map = new Map<string, string>();
    for (let i = 0; i + 1 < pairs.length; i += 2) map.set(pairs[i]!, pairs[i + 1]!);
    return {
      ...(map.has("maxmemory-policy") ? { maxmemoryPolicy: map.get("maxmemory-policy")! } : {}),
      ...(map.has("appendonly") ? { appendonly: map.get("appendonly") === "yes" } : {}),
      ...(map.has("save") ? { save: map.get("save")! } : {}),
    };
  } catch {
    const info = await redis.info();
    const field = (name: string) => new RegExp(`^${name}:(.*)$`, "m").exec(info)?.[1]?.trim();
    const policy = field("maxmemory_policy");
    const aof = field("aof_enabled");
    // INFO does not show save points, so an AOF-less server is not reported here (it may have RDB).
    return { ...(policy ? { maxmemoryPolicy: policy } : {}), ...(aof === "1" ? { appendonly: true } : {}) };
  }
}

export async function checkRedisSettings(redis: RedisConnection): Promise<string[]> {
  return settingsWarnings(await readRedisSettings(redis));
}
