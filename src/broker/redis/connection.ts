import { Cluster, Redis, type RedisOptions } from "ioredis";
import { BrokerError, BrokerUnreachableError, ConfigError, HandshakeTimeoutError } from "../../errors.ts";
import { guardHandshake } from "./handshake-guard.ts";
import { isClusterUrl, isSentinelUrl, maskUrlCredentials, parseRedisUrl } from "./url.ts";

/** Show a broker URL without its password. */
export function maskUrl(url: string): string {
  if (isSentinelUrl(url) || isClusterUrl(url)) return maskUrlCredentials(url);
  try {
    const u = new URL(url);
    if (u.password) u.password = "****";
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:****@");
  }
}

/**
 * Reconnect attempts a fail-fast connection's commands wait through before they fail. The reconnect delays
 * (50, 100, … ms) add up to about 1.8 s over eight attempts: a Redis restart or a short network blip is
 * ridden out, as Celery's publish retry and BullMQ's queue do, while a Redis that stays down still fails
 * the command within a few seconds. (A command that was sent but not answered when the connection dropped
 * is sent again after the reconnect; qworker's scripts recognise a repeated enqueue by the task id.)
 */
const FAIL_FAST_RECONNECTS = 8;

export interface ConnectionOptions {
  /** Fail the first connect after this long instead of retrying forever. */
  connectTimeoutMs: number;
  /** Give up on a command while disconnected (CLI) or queue it until Redis is back (worker). */
  failFast: boolean;
  /** Fail a command that has had no reply this long (ioredis's commandTimeout); unset: wait for ever. */
  commandTimeoutMs?: number;
  /** A connect that waits for Redis to load its data set (not failFast) says so here, with the seconds left. */
  onLoading?: (etaSeconds: number | undefined) => void;
}

/** A connection to the broker's Redis: one server (plain or found through Sentinel), or a Cluster. */
export type RedisConnection = Redis | Cluster;

/**
 * One ioredis connection. The first connect fails fast with a one-line BrokerError so `qworker send`
 * never hangs on a wrong URL; once connected, the connection reconnects by itself forever with a short
 * capped backoff, so a worker rides out a Redis restart without exiting.
 */
export async function openConnection(url: string, opts: ConnectionOptions, name: string): Promise<RedisConnection> {
  let connectedOnce = false;
  const options: RedisOptions = {
    lazyConnect: true,
    connectionName: name,
    connectTimeout: opts.connectTimeoutMs,
    enableReadyCheck: true,
    // A Redis loading its data set is asked again every second (ioredis: up to every 10 s), so a worker
    // waiting for the load starts soon after it ends.
    maxLoadingRetryTime: 1000,
    // null: a worker's commands wait for the reconnect however long it takes. A fail-fast connection's wait
    // through FAIL_FAST_RECONNECTS failed attempts, about 2 s (a restart), then fail.
    maxRetriesPerRequest: opts.failFast ? FAIL_FAST_RECONNECTS : null,
    enableOfflineQueue: true,
    retryStrategy: (times) => (connectedOnce ? Math.min(50 * times, 500) : null),
    ...(opts.commandTimeoutMs ? { commandTimeout: opts.commandTimeoutMs } : {}),
  };
  // The same rule for sentinels and cluster nodes: give up on a first connect, keep trying once connected.
  const retry = (times: number): number | null => (connectedOnce ? Math.min(50 * times, 1000) : null);
  let redis: RedisConnection;
  let where: string;
  let fix: string;
  try {
    const target = parseRedisUrl(url);
    ({ where, fix } = describeTarget(url, target.kind));
    switch (target.kind) {
      case "url":
        redis = new Redis(target.url, options);
        break;
      case "sentinel":
        redis = new Redis({
          ...options,
          ...target.options,
          sentinelRetryStrategy: retry,
          // A sentinel that accepts the connection and never answers would hang the master lookup.
          sentinelCommandTimeout: opts.connectTimeoutMs,
          // Reconnect as soon as a sentinel announces a new master, rather than when the old one drops us.
          failoverDetector: true,
          // A demoted master that keeps our connection answers writes with READONLY: reconnect, which
          // asks the sentinels for the new master, and resend the command there (it did not run).
          reconnectOnError: (err) => (err.message.includes("READONLY") ? 2 : false),
        });
        break;
      case "cluster": {
        const { retryStrategy: _perNode, ...nodeOptions } = options;
        redis = new Cluster(target.nodes, {
          lazyConnect: true,
          enableReadyCheck: true,
          enableOfflineQueue: true,
          clusterRetryStrategy: retry,
          // Cluster-level retries replace the per-node strategy: a node that goes away is found again
          // through the slot map, and MOVED/ASK after a failover or resharding are followed.
          redisOptions: { ...nodeOptions, ...target.nodeOptions },
        });
        break;
      }
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new BrokerError(`invalid Redis URL ${maskUrl(url)}: ${(err as Error).message}`, { cause: err });
  }
  // Workers wait for a Redis that is loading its data; the CLI and apps' clients say so and fail.
  const guard = { waitWhileLoading: !opts.failFast, ...(opts.onLoading ? { onLoading: opts.onLoading } : {}) };
  if (redis instanceof Cluster) redis.on("+node", (node: Redis) => guardHandshake(node, opts.connectTimeoutMs, guard));
  else guardHandshake(redis, opts.connectTimeoutMs, guard);
  // Errors surface through commands and the reconnect loop; an unhandled 'error' event would crash.
  // The socket error (ECONNREFUSED, ENOTFOUND…) is kept because connect() itself only rejects with
  // "Connection is closed.", which tells the user nothing.
  let socketError: NodeJS.ErrnoException | undefined;
  // ioredis sends the URL's SELECT on connect and, when Redis refuses it ("ERR DB index is out of range"),
  // only emits the error and goes on to "ready": the connection stays in db 0 while ioredis believes it is
  // in the URL's db, so tasks were queued to, and consumed from, db 0. The refusal is kept here and ends
  // the first connect below. (The SELECT's reply comes before the ready check's, so it is seen first.)
  let selectError: Error | undefined;
  redis.on("error", (err: NodeJS.ErrnoException & { command?: { name?: string } }) => {
    if (connectedOnce) return;
    if (err.command?.name === "select") selectError ??= err;
    else socketError ??= err;
  });
  try {
    await (redis instanceof Cluster ? connectCluster(redis) : redis.connect());
  } catch (err) {
    redis.disconnect();
    if (err instanceof ClusterNotReadyError) {
      // It can pass (a master restarting), so a worker starting now waits for it as for an unreachable Redis.
      const problem = `${where} is not ready (CLUSTER INFO says cluster_state:fail, or gave no answer: is a master with no replica down?)`;
      throw new BrokerUnreachableError(`${problem}: ${fix}, or set broker_url / QWORKER_BROKER_URL`, problem, { cause: err });
    }
    const cause = socketError ?? (err as NodeJS.ErrnoException);
    if (cause instanceof HandshakeTimeoutError) {
      const within = `${(cause.timeoutMs / 1000).toFixed(1)} s`;
      if (cause.reason === "loading") {
        const left = cause.etaSeconds === undefined ? "" : ` (about ${cause.etaSeconds} s left, by its own estimate)`;
        const problem = `${where} is still loading its data set after a restart${left}`;
        throw new BrokerUnreachableError(`${problem}: try again once it has loaded (a worker waits for it)`, problem, { cause: err });
      }
      const what =
        cause.reason === "stalled" ? `answered, then stopped answering before it was ready (${within})` : `accepted the connection but did not answer within ${within}`;
      throw new BrokerUnreachableError(
        `${where} ${what}: check that a running, responsive Redis listens there (not a stopped or overloaded one, or another service), or set broker_url / QWORKER_BROKER_URL`,
        `${where} ${what}`,
        { cause: err },
      );
    }
    const reason = cause.code ?? sentinelReason(cause.message);
    if (AUTH_REFUSED.test(reason)) {
      // Reached and running: "start redis-server" would send the user the wrong way.
      throw new BrokerError(
        `${where} refused the login (${reason}): check the user name and password in the broker URL (redis://user:password@host:port/db), or set broker_url / QWORKER_BROKER_URL`,
        { cause: err },
      );
    }
    const problem = `cannot reach ${where} (${reason})`;
    const message = `${problem}: ${fix}, or set broker_url / QWORKER_BROKER_URL`;
    if (canPass(cause.code, reason)) throw new BrokerUnreachableError(message, problem, { cause: err });
    throw new BrokerError(message, { cause: err });
  }
  if (selectError) {
    redis.disconnect();
    const db = parseRedisUrl(url).db;
    const what = /out of range/i.test(selectError.message) ? `has no database ${db}` : `refused SELECT ${db}`;
    throw new BrokerError(
      `${where} ${what} (${selectError.message}): use a database number below its "databases" setting (16 by default: 0 to 15), or set broker_url / QWORKER_BROKER_URL`,
      { cause: selectError },
    );
  }
  connectedOnce = true;
  return redis;
}

/**
 * Socket errors that waiting can cure: nothing listens yet (a Redis starting, or restarting), the host or
 * the network is not up yet, its name does not resolve yet (DNS at boot). A refused password, a TLS
 * certificate or an unknown master name stay wrong however long one waits.
 */
const PASSING = /\b(ECONNREFUSED|ECONNRESET|ECONNABORTED|EPIPE|ETIMEDOUT|EHOSTUNREACH|EHOSTDOWN|ENETUNREACH|ENETDOWN|ENOTFOUND|EAI_AGAIN)\b/;

/** Redis's answers to a missing or wrong password (requirepass or an ACL user). */
const AUTH_REFUSED = /^(WRONGPASS|NOAUTH)\b|invalid password|without any password configured/i;

function canPass(code: string | undefined, reason: string): boolean {
  // Sentinels that all closed or refused the connection say only "no sentinel answered".
  return (code !== undefined && PASSING.test(code)) || reason === "no sentinel answered" || PASSING.test(reason);
}

/** A Cluster whose first connect ended because its ready check failed (see connectCluster). */
class ClusterNotReadyError extends Error {
  constructor() {
    super("the cluster failed its ready check (CLUSTER INFO)");
  }
}

/**
 * ioredis's Cluster#connect() settles only on "ready" or on a close before the slot map was read. When the
 * slot map is read but the ready check then fails (CLUSTER INFO says cluster_state:fail, as it does once a
 * master with no replica has been down for cluster-node-timeout), it disconnects and asks the retry
 * strategy, which says no on a first connect, and the promise is left pending with nothing else alive:
 * `qworker send` and `qworker worker` exited silently with status 0, and an app's createClient() never
 * returned. The connection's "end" settles it here instead.
 */
function connectCluster(cluster: Cluster): Promise<void> {
  return new Promise((resolve, reject) => {
    // Only after the slot map was read: before that, connect() rejects by itself (no node reachable), and
    // its error says so better.
    let refreshed = false;
    const onRefresh = (): void => {
      refreshed = true;
    };
    const onEnd = (): void => {
      if (refreshed) reject(new ClusterNotReadyError());
    };
    cluster.once("refresh", onRefresh);
    cluster.once("end", onEnd);
    const done = (): void => {
      cluster.off("refresh", onRefresh);
      cluster.off("end", onEnd);
    };
    cluster.connect().then(
      () => {
        done();
        resolve();
      },
      (err: unknown) => {
        done();
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/**
 * QUIT, so Redis finishes what was sent before the connection goes; but a frozen Redis never acknowledges
 * it, and a caller closing after a failed command (the CLI, exiting) must not wait for ever or for another
 * command timeout. After `graceMs` the socket is dropped instead.
 */
export async function closeConnection(conn: RedisConnection, graceMs = 500): Promise<void> {
  const timer = setTimeout(() => conn.disconnect(), graceMs);
  try {
    await conn.quit();
  } catch {
    conn.disconnect();
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How errors name a broker URL's server (`where`) and what to check when it cannot be reached (`fix`).
 * `kind` defaults to what the URL's scheme says.
 */
export function describeTarget(url: string, kind: "url" | "sentinel" | "cluster" = isSentinelUrl(url) ? "sentinel" : isClusterUrl(url) ? "cluster" : "url"): { where: string; fix: string } {
  switch (kind) {
    case "url":
      return { where: `Redis at ${maskUrl(url)}`, fix: "start redis-server" };
    case "sentinel":
      return { where: `the Redis master through the sentinels of ${maskUrl(url)}`, fix: "check that the sentinels run and monitor that master name" };
    case "cluster":
      return { where: `the Redis Cluster at ${maskUrl(url)}`, fix: "check that its nodes run and the cluster is up (CLUSTER INFO)" };
  }
}

/** Listeners per pub/sub channel, which a subscriber connection from openSubscriber delivers to. */
export type ChannelListeners = Map<string, Set<(message: string) => void>>;

/**
 * A connection for SUBSCRIBE that hands each message to the listeners of its channel. Callers that cache
 * the promise must drop a rejected one, so that the next wait opens the connection again instead of
 * failing with the same error for ever.
 *
 * A message published while the connection is down is lost: ioredis reconnects and subscribes again, but
 * does not replay what it missed. That is not only a network blip: Redis itself drops a subscriber that a
 * large message pushes past `client-output-buffer-limit pubsub` (32 MB by default), so a result bigger
 * than that was never delivered. Once every channel with a listener is subscribed again after a
 * reconnect, `onResubscribed` runs, for the caller to read again what it was waiting for. On a Cluster
 * a reconnect is a new subscriber connection (see watchClusterSubscriber).
 */
export async function openSubscriber(
  url: string,
  opts: ConnectionOptions,
  name: string,
  listeners: ChannelListeners,
  onResubscribed?: () => void,
): Promise<RedisConnection> {
  const sub = await openConnection(url, opts, name);
  sub.on("message", (channel: string, message: string) => {
    for (const fn of listeners.get(channel) ?? []) fn(message);
  });
  if (!onResubscribed) return sub;
  const resubscribed = (conn: Redis): void => {
    const channels = [...listeners.keys()];
    if (channels.length === 0) return;
    // ioredis subscribes the connection again by itself, but does not say when Redis has it: ours goes on
    // the same connection and names every channel, so once it is answered a result stored from then on
    // is either published to us or found by the caller's read. Subscribing to a channel twice is
    // harmless. A failure means the connection dropped again, and its next "ready" comes back here.
    conn.subscribe(...channels).then(onResubscribed, () => {});
  };
  // openConnection returned after the first "ready": any later one is a reconnect.
  if (sub instanceof Redis) sub.on("ready", () => resubscribed(sub));
  else watchClusterSubscriber(sub, resubscribed);
  return sub;
}

/** The part of ioredis's (private) ClusterSubscriber that watchClusterSubscriber uses. */
interface ClusterSubscriberHolder {
  getInstance(): Redis | null;
}

/**
 * Calls `onNew` with each subscriber connection a Cluster opens after the one it has now, once that one
 * is ready. An ioredis that keeps its subscriber elsewhere is not watched (no catch-up, as before).
 *
 * Why not an event: a Cluster emits nothing when its subscriber connection drops or is replaced (its
 * "+subscriber"/"-subscriber" are for sharded subscribers, SSUBSCRIBE, which qworker's PUBLISH does not
 * reach). ioredis keeps that connection in its private `subscriber` (ClusterSubscriber): a plain Redis
 * with no retry strategy, which, once it has ended, is replaced at once by a new connection to a node
 * picked at random, subscribed to the old one's channels; a reconnect of the whole Cluster replaces it
 * too. So a new connection there is a reconnect, and its "ready" the same signal a plain Redis gives.
 * Why not a periodic re-read instead: it would cost a round trip per interval for as long as anything is
 * pending, and still be late by up to an interval, for an event that is rare. The private field is
 * checked rather than trusted; redis-cluster-subscriber-reconnect.test.ts fails if ioredis moves it.
 */
function watchClusterSubscriber(cluster: Cluster, onNew: (conn: Redis) => void): void {
  const holder = (cluster as unknown as { subscriber?: Partial<ClusterSubscriberHolder> }).subscriber;
  if (typeof holder?.getInstance !== "function") return;
  const getInstance = holder.getInstance.bind(holder);
  // ClusterSubscriber's own "end" listener was added first, so the replacement exists when this runs.
  const watchEnd = (conn: Redis): void => void conn.once("end", () => setImmediate(check));
  // The connection present now is the first, not a reconnect.
  let current = getInstance();
  if (current) watchEnd(current);
  const check = (): void => {
    const conn = getInstance();
    if (conn === null || conn === current) return;
    current = conn;
    watchEnd(conn);
    if (conn.status === "ready") onNew(conn);
    else conn.once("ready", () => onNew(conn));
  };
  // A reconnect of the whole Cluster, or a node found after there was none to subscribe to: both pick a
  // new subscriber, the latter in a "+node" listener that runs after this one.
  cluster.on("ready", check);
  cluster.on("+node", () => setImmediate(check));
}

/**
 * ioredis reports a failed Sentinel lookup as "All sentinels are unreachable and retry is disabled. Last
 * error: …", whose last error is often its own "Connection is closed.": say what happened instead.
 * Other messages are returned as they are.
 */
export function sentinelReason(message: string): string {
  const m = /^All sentinels are unreachable.*Last error: (.*)$/s.exec(message);
  if (!m) return message;
  const last = m[1]!.trim();
  if (/No such master/i.test(last)) return "no sentinel monitors a master of that name";
  if (last === "" || /^Connection is closed\.?$/.test(last)) return "no sentinel answered";
  return `no sentinel answered: ${last}`;
}

