/**
 * Waiting without spinning on a SQLite file shared by several processes.
 *
 * SQLite has no notifications across connections, but `PRAGMA data_version` changes whenever ANOTHER
 * connection commits, and reading it costs a few microseconds (it looks at the WAL index in shared
 * memory). A ChangeWatcher turns each change into an "epoch" bump and wakes whoever waits on it. It reads
 * data_version:
 *   - when poked: the transport watches the database directory (inotify on Linux) and pokes on any write
 *     to the database or its -wal file; a poke starts a short burst of fast polls, because the file write
 *     can land a moment before the commit is visible;
 *   - on a slow timer as a safety net, only while something waits or listens (or on a fast timer when
 *     file watching is unavailable).
 * Commits made through our own connection do not change data_version, so the transport calls `notify()`
 * after them.
 *
 * Race-free use: take `snapshot()` BEFORE checking the database, then `wait(until, snapshot)`. A commit
 * that lands between the check and the wait has already bumped the epoch (or will be seen on the next
 * read), so the wait returns.
 */
export interface ChangeWatcherOptions {
  /** Reads PRAGMA data_version (throws if the connection is closed). */
  readVersion: () => number;
  /** Poll period while waiting or listening. */
  pollMs: number;
  /** Poll period during a burst after a poke (default 4 ms). */
  burstPollMs?: number;
  /** How long a burst lasts (default 60 ms). */
  burstMs?: number;
}

interface Waiter {
  since: number;
  until: number;
  resolve: () => void;
}

export class ChangeWatcher {
  private readonly readVersion: () => number;
  private pollMs: number;
  private readonly burstPollMs: number;
  private readonly burstMs: number;
  private readonly waiters = new Set<Waiter>();
  private readonly subscribers = new Set<() => void>();
  private epoch = 0;
  private lastVersion: number | undefined;
  private subscriberEpoch = 0;
  private burstUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = 0;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;

  constructor(opts: ChangeWatcherOptions) {
    this.readVersion = opts.readVersion;
    this.pollMs = opts.pollMs;
    this.burstPollMs = opts.burstPollMs ?? 4;
    this.burstMs = opts.burstMs ?? 60;
  }

  /** Change the idle poll period (e.g. when file watching turns out to be unavailable). */
  setPollMs(ms: number): void {
    this.pollMs = ms;
    this.schedule();
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
    this.dispatchSoon();
  }

  /** Another process probably wrote to the file: look now and keep looking closely for a moment. */
  poke(): void {
    if (this.closed || !this.busy()) return;
    this.burstUntil = Date.now() + this.burstMs;
    this.dispatchSoon(true);
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
      this.schedule();
    };
  }

  close(): void {
    this.closed = true;
    this.clearTimer();
    if (this.immediate !== undefined) clearImmediate(this.immediate);
    this.immediate = undefined;
    for (const w of this.waiters) w.resolve();
    this.waiters.clear();
    this.subscribers.clear();
  }

  private busy(): boolean {
    return this.waiters.size > 0 || this.subscribers.size > 0;
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

  private dispatchSoon(refresh = false): void {
    if (this.immediate !== undefined) return;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      if (refresh) this.refresh();
      this.dispatch();
    });
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.closed) return;
    if (!this.busy()) {
      this.clearTimer();
      return;
    }
    const now = Date.now();
    let at = now + (now < this.burstUntil ? this.burstPollMs : this.pollMs);
    const nextDeadline = Math.min(...[...this.waiters].map((w) => w.until));
    if (nextDeadline < at) at = Math.max(now, nextDeadline);
    if (this.timer === undefined || at < this.timerAt) {
      this.clearTimer();
      this.timerAt = at;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.refresh();
        this.dispatch();
      }, at - now);
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
          // A listener's failure is its own business; keep watching for the others.
        }
      }
    }
    this.schedule();
  }
}
