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
  // A script that found one of its keys holding another program's data names the key and the fix itself.
  if (err.message.startsWith("BADKEY ")) return new BrokerError(`${where}: ${err.message.slice(7)}`, { cause: err });
  // Something else wrote one of qworker's keys (a shared prefix): Redis names neither the key nor a fix.
  // A plain command says which key it read; a script's error does not.
  if (isDataError(err)) {
    const key = keyOf(err);
    const what = err.message.startsWith("WRONGTYPE") ? "a key of the wrong type" : "a value that is not an integer";
    if (key !== undefined) {
      const fix = repairedByWorkers(key)
        ? "a running worker sets it aside within a second (start one if none runs), then try again"
        : "delete or rename it (redis-cli), then try again";
      return new BrokerError(`${where} holds ${what} at ${key}, where qworker keeps its data (another program writing under redis_prefix?): ${fix}; or give qworker a prefix of its own`, { cause: err });
    }
    return new BrokerError(
      `${where} holds ${what} where qworker keeps its data (another program writing under redis_prefix?): a running worker sets queue keys and qworker's global keys of another kind aside within a second, so try again once one runs; any other key, find it with redis-cli --scan and TYPE and delete it; or give qworker a prefix of its own`,
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
 * Redis refused a command because of the data it found (a key of another type, a counter that is not an
 * integer): it answered, so this is not an outage, and waiting or reconnecting does not change it.
 */
export function isDataError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const m = err.message;
  return m.startsWith("WRONGTYPE") || m.startsWith("BADKEY ") || m.startsWith("ERR value is not an integer");
}

/** The key a plain (not scripted) command's error is about: ioredis records the command it answered. */
function keyOf(err: Error): string | undefined {
  const cmd = (err as { command?: { name?: unknown; args?: unknown[] } }).command;
  if (!cmd || typeof cmd.name !== "string" || /^(eval|evalsha|fcall)/i.test(cmd.name)) return undefined;
  const key = cmd.args?.[0];
  return typeof key === "string" ? key : Buffer.isBuffer(key) ? key.toString() : undefined;
}

/**
 * Whether recover.lua sets this key aside when it holds the wrong type: a queue's keys and the global ones
 * (judged by the name's end, since the prefix is not known here).
 */
function repairedByWorkers(key: string): boolean {
  return /(?:^|:)(?:queues|workers|revoked|revoked:terminate|events|seq|poisoned|recover:last|recover:gap)$/.test(key) || /(?:^|:)q:.+:(?:ready|delayed|active|dead|wake)$/.test(key);
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
