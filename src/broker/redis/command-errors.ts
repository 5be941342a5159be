import { BrokerError } from "../../errors.ts";

/**
 * What ioredis says when a command of a fail-fast connection (CLI commands, apps' clients) gets no answer
 * names neither the server nor what to do: "Command timed out", or "Reached the max retries per request
 * limit (which is 1). Refer to "maxRetriesPerRequest" option for details." after the connection dropped
 * and one reconnect failed; on a Redis Cluster, "Too many Cluster redirections. Last error: …" or "Failed to
 * refresh slots cache.". This turns those into one-line BrokerErrors and leaves every other error (Redis's
 * own replies, our typed errors) as it is.
 *
 * Either way the command may still have run, or run later: a frozen Redis that wakes up executes what it
 * was sent, and a connection can drop after Redis ran a command but before its reply arrived. The message
 * says so, because a caller that simply sends again may send twice.
 */
export function plainCommandError(err: unknown, where: string, timeoutMs: number | undefined): unknown {
  if (!(err instanceof Error) || err instanceof BrokerError) return err;
  if (err.message === "Command timed out") {
    const within = timeoutMs === undefined ? "" : ` within ${(timeoutMs / 1000).toFixed(1)} s`;
    return new BrokerError(
      `${where} did not answer${within} (stopped, overloaded or busy with a long script): check it with redis-cli PING, or raise command_timeout; what was asked may still happen when it answers`,
      { cause: err },
    );
  }
  if (err.name === "MaxRetriesPerRequestError") {
    return new BrokerError(
      `lost the connection to ${where} and could not reconnect: check that it is running and reachable, then try again; what was asked may or may not have happened`,
      { cause: err },
    );
  }
  // Something else wrote one of qworker's keys (a shared prefix): Redis names neither the key nor a fix.
  if (err.message.startsWith("WRONGTYPE")) {
    return new BrokerError(
      `${where} holds a key of the wrong type where qworker keeps its data (another program writing under redis_prefix?): a running worker sets such a queue key aside into the dead-letter set within a second, so try again; or give qworker a prefix of its own`,
      { cause: err },
    );
  }
  // A Cluster's command that kept being redirected (MOVED to a node that is down, CLUSTERDOWN while the
  // cluster is failing) ends with ioredis's "Too many Cluster redirections. Last error: …".
  const redirected = /^Too many Cluster redirections\. Last error: (?:\w*Error: )?(.*)$/.exec(err.message);
  if (redirected) {
    const moved = /^(?:MOVED|ASK) \d+ (\S+)$/.exec(redirected[1]!);
    const why = moved ? `its node ${moved[1]} for these keys does not answer` : redirected[1];
    return new BrokerError(
      `${where} could not serve the command (${why}): check that every master runs and CLUSTER INFO says cluster_state:ok, then try again; what was asked may or may not have happened`,
      { cause: err },
    );
  }
  if (err.name === "ClusterAllFailedError" || err.message === "None of startup nodes is available") {
    return new BrokerError(
      `lost the connection to ${where}: none of its nodes answered; check that they are running and reachable, then try again; what was asked may or may not have happened`,
      { cause: err },
    );
  }
  return err;
}

/**
 * `target` with every method that returns a promise rejecting with plainCommandError's errors instead of
 * ioredis's. For the CLI's and apps' transports, not a worker's (whose connections wait for Redis to come
 * back instead of failing).
 */
export function withPlainCommandErrors<T extends object>(target: T, where: string, timeoutMs: number | undefined): T {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(target, {
    get(obj, prop) {
      const value: unknown = Reflect.get(obj, prop, obj);
      if (typeof value !== "function") return value;
      let fn = wrapped.get(prop);
      if (!fn) {
        const method = value as (...args: unknown[]) => unknown;
        fn = (...args: unknown[]): unknown => {
          const out = method.apply(obj, args);
          return out instanceof Promise ? out.catch((err: unknown) => Promise.reject(plainCommandError(err, where, timeoutMs))) : out;
        };
        wrapped.set(prop, fn);
      }
      return fn;
    },
  });
}
