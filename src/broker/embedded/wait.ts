/**
 * Waiting without spinning on a SQLite file shared by several processes.
 *
 * SQLite has no notifications across connections, but `PRAGMA data_version` changes whenever ANOTHER
 * connection commits, and reading it is a few microseconds (it looks at the WAL index in shared memory).
 * A ChangeWatcher polls it on a short timer, only while something is waiting or listening, and turns each
 * change into an "epoch" bump. Commits made through our own connection do not change data_version, so the
 * transport calls `notify()` after them.
 *
 * Race-free use: take `snapshot()` BEFORE checking the database, then `wait(until, snapshot)`. A commit
 * that lands between the check and the wait has already bumped the epoch, so the wait returns at once.
 */
export interface ChangeWatcherOptions {
  /** Reads PRAGMA data_version (throws if the connection is closed). */
  readVersion: () => number;
  /** Poll period while waiting or listening. */
  pollMs: number;
}

interface Waiter {
  since: number;
  until: number;
  resolve: () => void;
}

export class ChangeWatcher {
  private readonly readVersion: () => number;
  private readonly pollMs: number;
  private readonly waiters = new Set<Waiter>();
  private readonly subscribers = new Set<() => void>();
  private epoch = 0;
  private lastVersion: number | undefined;
  private subscriberEpoch = 0;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;

  constructor(opts: ChangeWatcherOptions) {
    this.readVersion = opts.readVersion;
    this.pollMs = opts.pollMs;
  }

  /** The current epoch, after looking for commits by other connections. */
  snapshot(): number {
    this.refresh();
    return this.epoch;
  }

  /** Something changed through our own connection: wake waiters and listeners on the next turn. */
  notify(): void {
    if (this.closed) return;
    this.epoch++;
    if (this.immediate === undefined) {
      this.immediate = setImmediate(() => {
        this.immediate = undefined;
        this.dispatch();
      });
    }
  }

  /** Resolve once the epoch moves past `since`, at `until` (epoch ms) at the latest, or on close(). */
  wait(until: number, since: number): Promise<void> {
    if (this.closed || this.epoch !== since || Date.now() >= until) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.waiters.add({ since, until, resolve });
      this.schedule();
    });
  }

  /** Call `fn` after every change seen while subscribed. Returns the unsubscribe function. */
  subscribe(fn: () => void): () => void {
    if (this.subscribers.size === 0) {
      this.refresh();
      this.subscriberEpoch = this.epoch;
    }
    this.subscribers.add(fn);
    this.schedule();
    return () => {
      this.subscribers.delete(fn);
    };
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    for (const w of this.waiters) w.resolve();
    this.waiters.clear();
    this.subscribers.clear();
  }

  private refresh(): void {
    let version: number;
    try {
      version = this.readVersion();
    } catch {
      // Connection gone (closing): count it as a change so waiters re-check and see the real state.
      this.epoch++;
      return;
    }
    if (version !== this.lastVersion) {
      if (this.lastVersion !== undefined) this.epoch++;
      this.lastVersion = version;
    }
  }

  private schedule(): void {
    if (this.closed) return;
    const active = this.waiters.size > 0 || this.subscribers.size > 0;
    if (!active) {
      if (this.timer !== undefined) clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.refresh();
        this.dispatch();
      }, this.pollMs);
    }
    // Pending reserves/waits keep the process alive, like a blocked socket read would; a listener alone
    // does not.
    if (this.waiters.size > 0) this.timer.ref();
    else this.timer.unref();
  }

  private dispatch(): void {
    if (this.closed) return;
    const now = Date.now();
    for (const w of this.waiters) {
      if (w.since !== this.epoch || now >= w.until) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
    if (this.subscribers.size > 0 && this.subscriberEpoch !== this.epoch) {
      this.subscriberEpoch = this.epoch;
      for (const fn of [...this.subscribers]) {
        try {
          fn();
        } catch {
          // A listener's failure is its own business; keep polling for the others.
        }
      }
    }
    this.schedule();
  }
}
