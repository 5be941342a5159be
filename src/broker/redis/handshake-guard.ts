import type { Redis } from "ioredis";
import { HandshakeTimeoutError } from "../../errors.ts";

export interface HandshakeGuardOptions {
  /** A Redis still loading its data set is alive: wait for it (workers) rather than fail (CLI, apps' clients). */
  waitWhileLoading: boolean;
  /** Told once per connect attempt that waits for a load, with Redis's estimate of the seconds left. */
  onLoading?: (etaSeconds: number | undefined) => void;
}

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
 * retries with its retry strategy.
 *
 * A Redis loading its data set after a restart is not ready either, but it is alive: it answers INFO (one
 * of the few commands it serves while loading) with `loading:1`, and ioredis repeats its ready check until
 * the load is done. So when a server that has answered something is not ready at the deadline, the guard
 * asks it with INFO. Loading: a worker's connection waits, deadline after deadline, for as long as the load
 * takes (a worker started with its Redis after a reboot must not exit); a fail-fast connection fails at
 * that deadline, saying so. No answer to INFO either: it stopped answering half-way, and the socket is destroyed.
 */
export function guardHandshake(redis: Redis, timeoutMs: number, opts: HandshakeGuardOptions): void {
  let timer: NodeJS.Timeout | undefined;
  const clear = (): void => {
    clearTimeout(timer);
    timer = undefined;
  };
  redis.on("connect", () => {
    clear();
    const stream = redis.stream;
    let answered = false;
    let toldLoading = false;
    stream.once("data", () => (answered = true));
    const pending = (): boolean => redis.status === "connect" && redis.stream === stream;
    const fail = (err: HandshakeTimeoutError): void => {
      if (pending()) stream.destroy(err);
    };
    const check = (): void => {
      timer = undefined;
      if (!pending()) return;
      if (!answered) return fail(new HandshakeTimeoutError(timeoutMs, "silent"));
      let replied = false;
      timer = setTimeout(() => {
        timer = undefined;
        if (!replied) fail(new HandshakeTimeoutError(timeoutMs, "stalled"));
      }, timeoutMs);
      timer.unref();
      redis.info("persistence").then(
        (info) => {
          replied = true;
          if (!pending()) return;
          const loading = /^loading:1\b/m.test(info);
          if (loading) {
            const eta = /^loading_eta_seconds:(\d+)/m.exec(info)?.[1];
            const etaSeconds = eta === undefined ? undefined : Number(eta);
            if (!opts.waitWhileLoading) return fail(new HandshakeTimeoutError(timeoutMs, "loading", etaSeconds));
            if (!toldLoading) opts.onLoading?.(etaSeconds);
            toldLoading = true;
          }
          // Loading (and waiting for it), or about to be ready: look again after another deadline.
          clear();
          timer = setTimeout(check, timeoutMs);
          timer.unref();
        },
        () => {
          // The connection went (or the server refused INFO): ioredis reports and retries as for any error.
        },
      );
    };
    timer = setTimeout(check, timeoutMs);
    timer.unref();
  });
  redis.on("ready", clear);
  redis.on("close", clear);
}
