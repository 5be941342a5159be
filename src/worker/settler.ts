import type { Logger } from "pino";
import type { SettleItem, Transport } from "../broker/transport.ts";

/**
 * Collects finished tasks and settles them in batches: everything that finishes in one turn of the event
 * loop goes to the broker in one call (one round trip on Redis). If the broker is unreachable the batch is
 * kept and retried; the tasks stay leased (and renewed) meanwhile, so nothing is lost and nothing runs
 * twice because of the outage.
 */
export class Settler<Owner> {
  private pending: SettleItem[] = [];
  /** Who each pending item belongs to, by position: handed back with the items, so no lookup by id. */
  private owners: Owner[] = [];
  private scheduled = false;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly transport: Transport,
    private readonly logger: Logger,
    /** Called with the items and their owners once the broker has them settled (or knows they were lost). */
    private readonly onSettled: (items: readonly SettleItem[], owners: readonly Owner[]) => void,
  ) {}

  get size(): number {
    return this.pending.length + this.inFlight;
  }

  add(item: SettleItem, owner: Owner): void {
    this.pending.push(item);
    this.owners.push(owner);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.pending;
    const owners = this.owners;
    if (batch.length === 0) return;
    this.pending = [];
    this.owners = [];
    this.inFlight += batch.length;
    let delay = 100;
    let retried = false;
    for (;;) {
      try {
        const settledIds = await this.transport.settle(batch);
        // The usual case, every lease still held, needs no bookkeeping.
        if (settledIds.length !== batch.length) {
          const settled = new Set(settledIds);
          for (const item of batch) {
            if (settled.has(item.id)) continue;
            // A settle that failed on a dropped connection may have run all the same (Redis executes what
            // reached it, e.g. after a freeze); this one then finds the lease already gone, and that is not
            // a lost lease.
            this.logger.warn(
              retried
                ? `task ${item.id}: its outcome was recorded by an earlier attempt (sent before the connection dropped), or its lease was lost and another worker may run it again`
                : `task ${item.id}: lease was lost before its outcome was recorded; another worker may run it again`,
            );
          }
        }
        this.onSettled(batch, owners);
        break;
      } catch (err) {
        this.logger.debug({ err }, "settle failed; retrying");
        retried = true;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 1000);
      }
    }
    this.inFlight -= batch.length;
    if (this.size === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Resolves when every added item has been settled. */
  drained(): Promise<void> {
    if (this.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
