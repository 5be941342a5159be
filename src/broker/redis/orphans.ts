import type { RedisConnection } from "./connection.ts";
import { runScript } from "./scripts.ts";

/**
 * Hand back leases in `workerId`'s name that the worker says it never received (Transport.releaseOrphans).
 * Reads each task's lease holder and token, then hands back through release.lua those still in the
 * worker's name: release.lua acts only on the token it is given, so a lease that changed hands between the
 * read and the release is left alone. A rare path (after a broker outage), so one extra round trip is fine.
 */
export async function releaseOrphans(redis: RedisConnection, prefix: string, workerId: string, ids: string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const pipe = redis.pipeline();
  for (const id of ids) pipe.hmget(`${prefix}j:${id}`, "w", "t", "q");
  const rows = (await pipe.exec()) ?? [];
  const args: string[] = [];
  rows.forEach(([err, fields], i) => {
    const [w, token, queue] = (fields ?? []) as (string | null)[];
    if (!err && w === workerId && token && queue) args.push(ids[i]!, token, queue);
  });
  if (args.length === 0) return 0;
  return Number(await runScript(redis, "release", [prefix, ...args]));
}
