import { Redis, type RedisOptions } from "ioredis";
import { BrokerError } from "../../errors.ts";

/** Show a broker URL without its password. */
export function maskUrl(url: string): string {
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
    redis = new Redis(url, options);
  } catch (err) {
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
    throw new BrokerError(
      `cannot reach Redis at ${maskUrl(url)} (${reason}): start redis-server or set broker_url / QWORKER_BROKER_URL`,
      { cause: err },
    );
  }
  connectedOnce = true;
  return redis;
}
