import { Redis, type RedisOptions } from "ioredis";
import { BrokerError, ConfigError } from "../../errors.ts";
import { isSentinelUrl, maskSentinelUrl, parseRedisUrl } from "./url.ts";

/** Show a broker URL without its password. */
export function maskUrl(url: string): string {
  if (isSentinelUrl(url)) return maskSentinelUrl(url);
  try {
    const u = new URL(url);
    if (u.password) u.password = "****";
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:****@");
  }
}

export interface ConnectionOptions {
  /** Fail the first connect after this long instead of retrying forever. */
  connectTimeoutMs: number;
  /** Give up on a command while disconnected (CLI) or queue it until Redis is back (worker). */
  failFast: boolean;
}

/**
 * One ioredis connection. The first connect fails fast with a one-line BrokerError so `qworker send`
 * never hangs on a wrong URL; once connected, the connection reconnects by itself forever with a short
 * capped backoff, so a worker rides out a Redis restart without exiting.
 */
export async function openConnection(url: string, opts: ConnectionOptions, name: string): Promise<Redis> {
  let connectedOnce = false;
  const options: RedisOptions = {
    lazyConnect: true,
    connectionName: name,
    connectTimeout: opts.connectTimeoutMs,
    enableReadyCheck: true,
    // null: commands issued during an outage wait for the reconnect instead of failing after N tries.
    maxRetriesPerRequest: opts.failFast ? 1 : null,
    enableOfflineQueue: true,
    retryStrategy: (times) => (connectedOnce ? Math.min(50 * times, 500) : null),
  };
  let redis: Redis;
  try {
    const target = parseRedisUrl(url);
    redis =
      target.kind === "url"
        ? new Redis(target.url, options)
        : new Redis({
            ...options,
            ...target.options,
            // The same rule for the sentinels: give up on a first connect, keep trying once connected.
            sentinelRetryStrategy: (times) => (connectedOnce ? Math.min(50 * times, 1000) : null),
            // Reconnect as soon as a sentinel announces a new master, rather than when the old one drops us.
            failoverDetector: true,
            // A demoted master that keeps our connection answers writes with READONLY: reconnect, which
            // asks the sentinels for the new master, and resend the command there (it did not run).
            reconnectOnError: (err) => (err.message.includes("READONLY") ? 2 : false),
          });
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new BrokerError(`invalid Redis URL ${maskUrl(url)}: ${(err as Error).message}`, { cause: err });
  }
  // Errors surface through commands and the reconnect loop; an unhandled 'error' event would crash.
  // The socket error (ECONNREFUSED, ENOTFOUND…) is kept because connect() itself only rejects with
  // "Connection is closed.", which tells the user nothing.
  let socketError: NodeJS.ErrnoException | undefined;
  redis.on("error", (err: NodeJS.ErrnoException) => {
    if (!connectedOnce) socketError ??= err;
  });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    const cause = socketError ?? (err as NodeJS.ErrnoException);
    const reason = cause.code ?? cause.message;
    const [where, fix] = isSentinelUrl(url)
      ? [`the Redis master through the sentinels of ${maskUrl(url)}`, "check that the sentinels run and monitor that master name"]
      : [`Redis at ${maskUrl(url)}`, "start redis-server"];
    throw new BrokerError(`cannot reach ${where} (${reason}): ${fix}, or set broker_url / QWORKER_BROKER_URL`,
      { cause: err },
    );
  }
  connectedOnce = true;
  return redis;
}
