import type { RedisConnection } from "./connection.ts";

/** A wait for a key's value that pub/sub announces: the key, what to do with the value, how to give up. */
export interface PendingWait {
  key: string;
  settle(value: string): void;
  abandon(err: Error): void;
}

/**
 * The result waits of one client (the Redis transport, the Celery client). Pub/sub does not replay what a
 * subscriber missed, and Redis drops a subscriber that one message pushes past its pubsub output buffer
 * (32 MB by default): after a reconnect every pending wait reads its key again, in one MGET. close() gives
 * every wait up at once rather than leave it to a deadline that may be hours off.
 */
export class PendingWaits {
  private readonly waits = new Set<PendingWait>();

  add(wait: PendingWait): void {
    this.waits.add(wait);
  }

  delete(wait: PendingWait): void {
    this.waits.delete(wait);
  }

  abandonAll(err: Error): void {
    for (const wait of [...this.waits]) wait.abandon(err);
  }

  /** One read of every pending wait's key; rejects when the read fails, for the caller to try again (CatchUp). */
  async readAgain(redis: RedisConnection): Promise<void> {
    const waits = [...this.waits];
    if (waits.length === 0) return;
    const values = await redis.mget(waits.map((w) => w.key));
    values.forEach((value, i) => {
      if (value !== null) waits[i]!.settle(value);
    });
  }
}
