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
  /**
   * Embedded broker: connect only to an existing database, never create one (commands that look at or
   * change tasks already sent: there is nothing to find in a new one). Redis: no effect.
   */
  mustExist?: boolean;
  /** Embedded broker: told the database's absolute path when connect() had to create it. */
  onCreate?: (file: string) => void;
  /**
   * How long the REVOKED result of a task revoked while it waits is kept, in ms (<= 0: for ever; default one
   * day): result_expires, so it lives as long as any other result, whoever revokes it and on either broker.
   */
  resultTtlMs?: number;
}

/** The transport options a loaded config sets, plus the caller's own. */
export function transportOptions(config: QWorkerConfig, extra: { failFast?: boolean; mustExist?: boolean } = {}): TransportOptions {
  const replicated = config.enqueue_min_replicas > 0;
  return {
    ...extra,
    redisPrefix: config.redis_prefix,
    resultTtlMs: config.result_expires * 1000,
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
    // The Redis transport takes the same options, bar the embedded broker's; only the prefix has its own name there.
    const { redisPrefix, mustExist: _mustExist, onCreate: _onCreate, ...redisOpts } = opts;
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
    return createSqliteTransport(url, {
      mustExist: opts.mustExist ?? false,
      ...(opts.onCreate ? { onCreate: opts.onCreate } : {}),
      ...(opts.resultTtlMs !== undefined ? { resultTtlMs: opts.resultTtlMs } : {}),
    });
  }
  throw new BrokerError(`unsupported broker URL scheme "${scheme}" in ${url}: use redis://, rediss://, redis+sentinel://, redis+cluster:// or sqlite://`);
}
