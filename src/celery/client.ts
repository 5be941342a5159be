import { withPlainCommandErrors } from "../broker/redis/command-errors.ts";
import { CatchUp } from "../broker/redis/catch-up.ts";
import { PendingWaits, type PendingWait } from "../broker/redis/pending-waits.ts";
import { closeConnection, describeTarget, maskUrl, openConnection, openSubscriber, type ChannelListeners, type ConnectionOptions, type RedisConnection } from "../broker/redis/connection.ts";
import { isClusterUrl, isRedisUrl } from "../broker/redis/url.ts";
import { loadConfig } from "../config/load.ts";
import { DEFAULT_COMMAND_TIMEOUT } from "../config/schema.ts";
import { BrokerError, ConfigError, ResultTimeoutError, UsageError } from "../errors.ts";
import { startWaitDeadline, waitTimeoutMs } from "../results/wait-deadline.ts";
import {
  bindingKey,
  bindingMember,
  decodeResultMeta,
  encodeCeleryTask,
  resultKey,
  type CelerySendOptions,
  type DecodedCeleryResult,
} from "../protocol/celery/index.ts";

/**
 * Sending to Celery workers and reading Celery results: the library side of `qworker send --celery` and
 * `qworker result --celery`. Messages are protocol v2 JSON envelopes LPUSHed to kombu's list, exactly
 * what Celery 5.2's `apply_async` writes; results are read the way `AsyncResult.get()` does (SUBSCRIBE,
 * then GET, then wait for a PUBLISH of a ready state).
 */

export interface CeleryClientOptions {
  /** Redis URL of the Celery broker; default: config `celery.broker_url`, else `broker_url`. */
  brokerUrl?: string;
  configPath?: string;
  /** kombu global_keyprefix, if the Celery app sets one. */
  keyPrefix?: string;
}

export interface CelerySendCallOptions {
  kwargs?: Record<string, unknown>;
  /** kombu queue (default "celery"). */
  queue?: string;
  /** Seconds from now. */
  countdown?: number;
  eta?: Date | string | number;
  /** Seconds from now, or a date. */
  expires?: number | Date | string;
  /** 0..9; on Redis 0 is served first. */
  priority?: number;
  id?: string;
  ignoreResult?: boolean;
  /** Seconds. */
  timeLimit?: number;
  softTimeLimit?: number;
}

export interface CeleryResultRef {
  readonly id: string;
  /** Wait for SUCCESS (resolves with the value) or FAILURE/REVOKED (rejects with a CeleryTaskError). */
  get(options?: { timeout?: number }): Promise<unknown>;
  /** Wait for a ready state and return it whole (never throws for a task failure). */
  wait(options?: { timeout?: number }): Promise<DecodedCeleryResult>;
  /** The stored state, or null (Celery's PENDING: nothing stored yet). */
  state(): Promise<DecodedCeleryResult | null>;
}

export interface CeleryClient {
  send(task: string, args?: unknown[], options?: CelerySendCallOptions): Promise<CeleryResultRef>;
  result(id: string): CeleryResultRef;
  close(): Promise<void>;
}

function toEpochMs(value: Date | string | number, flag: string): number {
  const ms = value instanceof Date ? value.getTime() : typeof value === "number" ? value : Date.parse(value);
  if (!Number.isFinite(ms)) throw new UsageError(`${flag} is not a valid date: ${String(value)} (use ISO 8601, e.g. 2030-01-01T12:00:00Z)`);
  return ms;
}

/** Turn the friendly options into the encoder's (milliseconds, epoch times). */
export function celerySendOptions(task: string, args: unknown[], o: CelerySendCallOptions, keyPrefix = ""): CelerySendOptions {
  if (o.countdown !== undefined && o.eta !== undefined) throw new UsageError("give either countdown or eta, not both");
  return {
    task,
    args,
    ...(o.kwargs ? { kwargs: o.kwargs } : {}),
    ...(o.id ? { id: o.id } : {}),
    ...(o.queue ? { queue: o.queue } : {}),
    ...(o.countdown !== undefined ? { countdownMs: o.countdown * 1000 } : {}),
    ...(o.eta !== undefined ? { eta: toEpochMs(o.eta, "eta") } : {}),
    ...(typeof o.expires === "number" ? { expiresInMs: o.expires * 1000 } : o.expires !== undefined ? { expires: toEpochMs(o.expires, "expires") } : {}),
    ...(o.priority !== undefined ? { priority: o.priority } : {}),
    ...(o.ignoreResult ? { ignoreResult: true } : {}),
    ...(o.timeLimit !== undefined ? { hardTimeLimitMs: o.timeLimit * 1000 } : {}),
    ...(o.softTimeLimit !== undefined ? { softTimeLimitMs: o.softTimeLimit * 1000 } : {}),
    keyPrefix,
  };
}

/**
 * The Celery broker URL (from options, else config; it must be Redis) and the command timeout (config's
 * command_timeout, or its default when the URL was given and no config was read).
 */
function celeryConnection(options: CeleryClientOptions): { url: string; commandTimeoutMs: number | undefined } {
  let url = options.brokerUrl;
  let timeoutS = DEFAULT_COMMAND_TIMEOUT;
  if (!url) {
    const { config } = loadConfig(options.configPath ? { configPath: options.configPath } : {});
    url = config.celery?.broker_url ?? config.broker_url;
    timeoutS = config.command_timeout;
  }
  if (!isRedisUrl(url) || isClusterUrl(url)) {
    throw new ConfigError(`Celery interop needs the Redis broker your Celery app uses, got ${url}: pass --broker redis://host:6379/0 or set celery.broker_url`);
  }
  return { url, commandTimeoutMs: timeoutS > 0 ? timeoutS * 1000 : undefined };
}

export async function createCeleryClient(options: CeleryClientOptions = {}): Promise<CeleryClient> {
  const { url, commandTimeoutMs } = celeryConnection(options);
  const connOpts: ConnectionOptions = { connectTimeoutMs: 3000, failFast: true, ...(commandTimeoutMs ? { commandTimeoutMs } : {}) };
  const redis = await openConnection(url, connOpts, "qworker-celery-client");
  const where = describeTarget(url).where;
  // The client and every result ref it hands out report a lost or silent Redis in one line.
  const plain = <T extends object>(target: T): T => withPlainCommandErrors(target, where, commandTimeoutMs);
  return plain<CeleryClient>(new RedisCeleryClient(redis, url, connOpts, options.keyPrefix ?? "", plain));
}

class RedisCeleryClient implements CeleryClient {
  private sub: Promise<RedisConnection> | undefined;
  private readonly listeners: ChannelListeners = new Map();
  /** Every pending wait: close() ends them, a reconnect of the subscriber reads their results again. */
  private readonly waits = new PendingWaits();
  /** The read of the pending waits after a reconnect, tried again until it succeeds (as the Redis transport's). */
  private readonly catchUp = new CatchUp();
  private closed = false;

  constructor(
    private readonly redis: RedisConnection,
    private readonly url: string,
    private readonly connOpts: ConnectionOptions,
    private readonly keyPrefix: string,
    private readonly plain: <T extends object>(target: T) => T,
  ) {}

  async send(task: string, args: unknown[] = [], options: CelerySendCallOptions = {}): Promise<CeleryResultRef> {
    if (this.closed) throw this.closedError();
    const msg = encodeCeleryTask(celerySendOptions(task, args, options, this.keyPrefix));
    // Declaring the queue's binding is what kombu does before publishing; it lets kombu restore messages.
    await this.redis.multi().sadd(bindingKey(msg.queue, this.keyPrefix), bindingMember(msg.queue, msg.queue)).lpush(msg.listKey, msg.raw).exec();
    return this.result(msg.id);
  }

  result(id: string): CeleryResultRef {
    const wait = async (opts?: { timeout?: number }) => this.waitReady(id, waitTimeoutMs(opts?.timeout ?? 3600));
    const ref: CeleryResultRef = {
      id,
      wait,
      get: async (opts) => {
        const r = await wait(opts);
        if (r.error) throw r.error;
        return r.result;
      },
      state: async () => {
        if (this.closed) throw this.closedError();
        const raw = await this.redis.get(resultKey(id));
        return raw === null ? null : decodeResultMeta(raw);
      },
    };
    return this.plain(ref);
  }

  private closedError(): BrokerError {
    return new BrokerError(`Celery client for ${maskUrl(this.url)} is closed: it was used after close()`);
  }

  private subscriber(): Promise<RedisConnection> {
    if (this.closed) return Promise.reject(this.closedError());
    this.sub ??= openSubscriber(this.url, this.connOpts, "qworker-celery-sub", this.listeners, () => {
      if (!this.closed) this.catchUp.start([() => this.waits.readAgain(this.redis)]);
    }).catch((err: unknown) => {
      this.sub = undefined; // see openSubscriber
      throw err;
    });
    return this.sub;
  }

  private async waitReady(id: string, timeoutMs: number): Promise<DecodedCeleryResult> {
    const channel = resultKey(id);
    const sub = await this.subscriber();
    let fn: ((message: string) => void) | undefined;
    let cancelDeadline: (() => void) | undefined;
    let wait: PendingWait | undefined;
    try {
      return await new Promise<DecodedCeleryResult>((resolve, reject) => {
        const offer = (raw: string) => {
          try {
            const r = decodeResultMeta(raw);
            if (r.ready) resolve(r);
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        };
        fn = offer;
        wait = { key: channel, settle: offer, abandon: reject };
        this.waits.add(wait);
        let set = this.listeners.get(channel);
        if (!set) this.listeners.set(channel, (set = new Set()));
        set.add(offer);
        cancelDeadline = startWaitDeadline(timeoutMs, () => reject(new ResultTimeoutError(id, timeoutMs)));
        // Subscribe first, then read: a result stored between the two is caught by one or the other.
        sub
          .subscribe(channel)
          .then(() => this.redis.get(channel))
          .then((raw) => {
            if (raw !== null) offer(raw);
          })
          .catch(reject);
      });
    } finally {
      cancelDeadline?.();
      if (wait) this.waits.delete(wait);
      const set = this.listeners.get(channel);
      if (fn) set?.delete(fn);
      if (set && set.size === 0) {
        this.listeners.delete(channel);
        await sub.unsubscribe(channel).catch(() => {});
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.catchUp.stop();
    // A pending wait would otherwise never settle: its subscriber is about to go, its deadline may be hours off.
    this.waits.abandonAll(this.closedError());
    const sub = this.sub ? await this.sub.catch(() => undefined) : undefined;
    await Promise.all([this.redis, sub].map((c) => c && closeConnection(c)));
  }
}
