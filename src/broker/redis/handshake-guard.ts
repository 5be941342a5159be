import type { Redis } from "ioredis";
import { HandshakeTimeoutError } from "../../errors.ts";

/**
 * ioredis's `connectTimeout` ends when the TCP connection is up. Its handshake after that (AUTH, CLIENT
 * SETNAME, the INFO ready check) has no deadline, so a server that accepts connections but never answers
 * (a stopped or wedged redis-server, whose kernel still completes the TCP handshake; a proxy or NAT that
 * dropped the flow) keeps the connection in status "connect" for ever: the first connect of `qworker send`
 * hangs, and a worker's reconnect, or the blocking connection it opens on its first idle wait, never
 * completes while nothing reports an error.
 *
 * This gives every connect attempt a deadline: if no byte came back within `timeoutMs` of the socket
 * connecting, the socket is destroyed with a HandshakeTimeoutError. ioredis then does what it does for any
 * socket error: a first connect fails (openConnection reports it), an established connection retries with
 * its retry strategy. A server that answers at all (even "LOADING" while it reads its AOF) is left alone.
 */
export function guardHandshake(redis: Redis, timeoutMs: number): void {
  let timer: NodeJS.Timeout | undefined;
  const clear = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  redis.on("connect", () => {
    clear();
    const stream = redis.stream;
    stream.once("data", clear);
    timer = setTimeout(() => {
      timer = undefined;
      if (redis.status === "connect") stream.destroy(new HandshakeTimeoutError(timeoutMs));
    }, timeoutMs);
    timer.unref();
  });
  redis.on("close", clear);
}
