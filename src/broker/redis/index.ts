import type { Transport } from "../transport.ts";
import { RedisTransport, type RedisTransportOptions } from "./redis-transport.ts";

export { RedisTransport, type RedisTransportOptions };

export function createRedisTransport(url: string, opts?: RedisTransportOptions): Transport {
  return new RedisTransport(url, opts);
}
