import type { Redis } from "ioredis";
import { HandshakeTimeoutError } from "../../errors.ts";

/**
 * ioredis's `connectTimeout` ends when the TCP connection is up. Its handshake after that (AUTH, CLIENT
 * SETNAME and SETINFO, the INFO ready check) has no deadline, so a server that accepts connections but
 * stops answering (a stopped or wedged redis-server, whose kernel still completes the TCP handshake; a
 * proxy or NAT that dropped the flow, even half-way through the handshake) keeps the connection in status
 * "connect" for ever: the first connect of `qworker send` hangs, and a worker's reconnect, or the blocking
 * connection it opens on its first idle wait, never completes while nothing reports an error.
 *
 * This gives every connect attempt a deadline: a connection that is not ready within `timeoutMs` of its
 * socket connecting has the socket destroyed with a HandshakeTimeoutError. ioredis then does what it does
 * for any socket error: a first connect fails (openConnection reports it), an established connection
 * retries with its retry strategy. A Redis still loading its data answers the ready check with "loading"
 * and is not ready either: a worker then reconnects every `timeoutMs` until the load is done.
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
    let answered = false;
    stream.once("data", () => (answered = true));
    timer = setTimeout(() => {
      timer = undefined;
      if (redis.status === "connect" && redis.stream === stream) stream.destroy(new HandshakeTimeoutError(timeoutMs, answered));
    }, timeoutMs);
    timer.unref();
  });
  redis.on("ready", clear);
  redis.on("close", clear);
}
