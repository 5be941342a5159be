/** How long a worker remembers a revoke it heard: far longer than any reply or rate-limit check is in flight. */
export const RECENT_REVOKE_MS = 60_000;
/** At most this many ids are remembered; the oldest go first. */
export const RECENT_REVOKE_MAX = 10_000;

/**
 * Lease ids revoked in the last minute, as a Celery worker keeps its `revoked` set. A revoke reaches a
 * worker on its control channel, while its own tasks arrive on another connection, so the two can cross:
 * a reserve reply read after the revoke that was published once the task was already leased, or a task
 * whose rate-limit check was on its way to the broker. Neither is in the prefetch when the revoke is
 * heard; the worker asks here before it runs such a task.
 *
 * A revoke is remembered for a minute, or for its own TTL when the broker passed that on and it is
 * shorter: once the broker has forgotten a revoke, a task sent again under that id must run here too. An id
 * heard again is kept until the later of its two expiries, as the brokers keep it.
 * The size cap drops the oldest first (a Map keeps insertion order).
 */
export class RecentRevokes {
  private readonly until = new Map<string, number>();

  constructor(
    private readonly ttlMs = RECENT_REVOKE_MS,
    private readonly max = RECENT_REVOKE_MAX,
  ) {}

  get size(): number {
    return this.until.size;
  }

  note(ids: readonly string[], ttlMs?: number, now = Date.now()): void {
    const until = now + Math.min(ttlMs ?? this.ttlMs, this.ttlMs);
    for (const id of ids) {
      // A second revoke with a shorter TTL does not cut short the one heard before: the broker keeps the
      // later expiry too (a revoke for ever, then one for an hour, still holds after the hour).
      const held = this.until.get(id);
      this.until.delete(id); // to the back: the newest heard go last when the cap drops the oldest
      this.until.set(id, held !== undefined && held > until ? held : until);
    }
    for (const id of this.until.keys()) {
      if (this.until.size <= this.max) break;
      this.until.delete(id);
    }
  }

  has(id: string, now = Date.now()): boolean {
    if (this.until.size === 0) return false;
    const until = this.until.get(id);
    return until !== undefined && until > now;
  }

  /** Forget what has expired (the housekeeping tick calls this; a few thousand entries at most). */
  prune(now = Date.now()): void {
    for (const [id, until] of this.until) if (until <= now) this.until.delete(id);
  }
}
