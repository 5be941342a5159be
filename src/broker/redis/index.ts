import type { Transport } from "../transport.ts";
import { withPlainCommandErrors } from "./command-errors.ts";
import { describeTarget } from "./connection.ts";
import { RedisTransport, type RedisTransportOptions } from "./redis-transport.ts";

export { RedisTransport, type RedisTransportOptions };

/**
 * A fail-fast transport (CLI commands, apps' clients) reports a lost or silent Redis in one line naming
 * the server; a worker's waits for Redis to come back and never sees those errors.
 */
export function createRedisTransport(url: string, opts?: RedisTransportOptions): Transport {
  const transport = new RedisTransport(url, opts);
  return opts?.failFast ? withPlainCommandErrors(transport, describeTarget(url).where, opts.commandTimeoutMs) : transport;
}
