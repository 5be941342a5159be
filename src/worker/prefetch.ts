/**
 * How many tasks a worker reserves beyond its free slots when `prefetch` is not configured.
 *
 * Reserving ahead lets the broker fetch the next batch while this batch runs, instead of the worker and
 * Redis taking turns: for short tasks that is most of the throughput. The price is fairness: a prefetched
 * task is leased to this worker and waits for a slot, while another worker may be idle. So the automatic
 * amount is sized by time: only as many tasks as the slots will get through in about WAIT_BUDGET_MS at the
 * recent average runtime, and none until a few tasks have shown how long they take. Long tasks therefore
 * get no prefetch at all, the way Celery users are told to run them (`-O fair`, prefetch multiplier 1).
 * Prefetched tasks are leased and renewed like running ones, and handed back at shutdown.
 */
export const WAIT_BUDGET_MS = 10;
/**
 * Upper bound of the automatic prefetch. Larger batches mean fewer broker calls per task, and the time
 * budget above already keeps slow tasks from being held back; this only bounds what one worker can hold
 * of a backlog of very short tasks (256 no-op tasks are well under a millisecond of work).
 */
export const PREFETCH_CAP = 256;
/** Runtimes seen before the average is trusted. */
const WARMUP = 8;
/** Weight of the newest runtime in the moving average. */
const ALPHA = 0.05;

export class AutoPrefetch {
  private avgMs = 0;
  private seen = 0;

  constructor(private readonly concurrency: number) {}

  /** Record one task's runtime. */
  observe(runtimeMs: number): void {
    const ms = Number.isFinite(runtimeMs) && runtimeMs > 0 ? runtimeMs : 0;
    this.avgMs = this.seen === 0 ? ms : this.avgMs + ALPHA * (ms - this.avgMs);
    this.seen++;
  }

  /** Tasks to hold beyond free slots now: at most max(concurrency, PREFETCH_CAP), and 0 for tasks of 10 ms or more. */
  target(): number {
    if (this.seen < WARMUP) return 0;
    const cap = Math.max(this.concurrency, PREFETCH_CAP);
    const fits = Math.floor((this.concurrency * WAIT_BUDGET_MS) / Math.max(this.avgMs, 0.01)) - this.concurrency;
    return Math.max(0, Math.min(cap, fits));
  }
}
