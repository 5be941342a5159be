import type { QWorkerConfig } from "../config/schema.ts";
import { BrokerError } from "../errors.ts";
import { isRedisUrl } from "./redis/url.ts";
import type { Transport } from "./transport.ts";

export interface TransportOptions {
  /** Fail commands during an outage (CLI, apps sending) rather than wait for the broker (workers). */
  failFast?: boolean;
  redisPrefix?: string;
  /** Redis: enqueue returns once this many replicas have the tasks (WAIT on the same connection). */
  enqueueMinReplicas?: number;
  enqueueReplicaTimeoutMs?: number;
  /** Redis, fail-fast connections only: a command unanswered this long fails (undefined: never). */
  commandTimeoutMs?: number;
  /** Redis, workers: told when a connect waits for Redis to load its data set, with the seconds left. */
  onLoading?: (etaSeconds: number | undefined) => void;
}

/** The transport options a loaded config sets, plus the caller's own. */
export function transportOptions(config: QWorkerConfig, extra: { failFast?: boolean } = {}): TransportOptions {
  const replicated = config.enqueue_min_replicas > 0;
  return {
    ...extra,
    redisPrefix: config.redis_prefix,
    ...(replicated ? { enqueueMinReplicas: config.enqueue_min_replicas, enqueueReplicaTimeoutMs: config.enqueue_replica_timeout * 1000 } : {}),
    // A send that waits for replicas is answered only after that wait, so the deadline starts after it.
    ...(extra.failFast && config.command_timeout > 0
      ? { commandTimeoutMs: (config.command_timeout + (replicated ? config.enqueue_replica_timeout : 0)) * 1000 }
      : {}),
  };
}

/** Pick the transport from the URL scheme. Each is imported on demand, so Redis users never load SQLite. */
export async function createTransport(url: string, opts: TransportOptions = {}): Promise<Transport> {
  if (isRedisUrl(url)) {
    const { createRedisTransport } = await import("./redis/index.ts");
    // The Redis transport takes the same options; only the prefix has its own name there.
    const { redisPrefix, ...redisOpts } = opts;
    return createRedisTransport(url, { ...redisOpts, ...(redisPrefix ? { prefix: redisPrefix } : {}) });
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
