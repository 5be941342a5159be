import { BrokerError } from "../errors.ts";
import { isRedisUrl } from "./redis/url.ts";
import type { Transport } from "./transport.ts";

export interface TransportOptions {
  /** Fail commands during an outage (CLI, apps sending) rather than wait for the broker (workers). */
  failFast?: boolean;
  redisPrefix?: string;
}

/** Pick the transport from the URL scheme. Each is imported on demand, so Redis users never load SQLite. */
export async function createTransport(url: string, opts: TransportOptions = {}): Promise<Transport> {
  if (isRedisUrl(url)) {
    const { createRedisTransport } = await import("./redis/index.ts");
    return createRedisTransport(url, {
      ...(opts.failFast !== undefined ? { failFast: opts.failFast } : {}),
      ...(opts.redisPrefix ? { prefix: opts.redisPrefix } : {}),
    });
  }
  let scheme: string;
  try {
    scheme = new URL(url).protocol;
  } catch {
    throw new BrokerError(`invalid broker URL "${url}": expected redis://host:port, redis+sentinel://…, redis+cluster://… or sqlite://path/to/file.db`);
  }
  if (scheme === "sqlite:") {
    const { createSqliteTransport } = await import("./embedded/index.ts");
    return createSqliteTransport(url);
  }
  throw new BrokerError(`unsupported broker URL scheme "${scheme}" in ${url}: use redis://, rediss://, redis+sentinel://, redis+cluster:// or sqlite://`);
}
