import { debuglog } from "node:util";

const debug = debuglog("qworker");

/** The first retry of a failed catch-up read, doubled after each failure up to CATCH_UP_MAX_RETRY_MS. */
export const CATCH_UP_FIRST_RETRY_MS = 100;
export const CATCH_UP_MAX_RETRY_MS = 2000;

/**
 * The reads a subscriber runs after it reconnects, to recover what was published while it was away
 * (see openSubscriber). Such a read can fail where the reconnect itself did not: on a Cluster the
 * subscriber may come back on a healthy node while the master of the slot holding the keys is down or
 * failing over, and no later reconnect need come to read again. So a read that fails is tried again, with
 * a bounded backoff, until it succeeds; only the reads that failed are repeated. A newer catch-up (the
 * subscriber reconnected again) or stop() ends the retries. A read with nothing to do resolves at once, so
 * no timer is left when nothing is pending. The failures are expected while the broker recovers: they are
 * only logged with NODE_DEBUG=qworker.
 */
export class CatchUp {
  private run = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  start(reads: (() => Promise<void>)[]): void {
    this.cancel();
    if (this.stopped) return;
    const run = this.run;
    let left = reads;
    let delay = CATCH_UP_FIRST_RETRY_MS;
    const attempt = (): void => {
      this.timer = undefined;
      void Promise.all(
        left.map((read) =>
          Promise.resolve()
            .then(read)
            .then(
              () => undefined,
              (err: unknown) => {
                debug("catch-up read after a subscriber reconnect failed, retrying in %d ms: %s", delay, (err as Error)?.message ?? err);
                return read;
              },
            ),
        ),
      ).then((failed) => {
        left = failed.filter((read) => read !== undefined);
        if (left.length === 0 || this.stopped || run !== this.run) return;
        this.timer = setTimeout(attempt, delay);
        // The connections keep the process alive while there is anything to wait for; this timer need not.
        this.timer.unref();
        delay = Math.min(delay * 2, CATCH_UP_MAX_RETRY_MS);
      });
    };
    attempt();
  }

  stop(): void {
    this.stopped = true;
    this.cancel();
  }

  private cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.run++;
  }
}
