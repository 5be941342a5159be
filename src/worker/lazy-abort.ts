/**
 * An AbortController that creates the real one only when someone asks for the signal. Every task gets a
 * controller (terminate, lease loss, time limits and shutdown abort through it), but most tasks never look
 * at `ctx.signal` and are never aborted; creating an AbortSignal costs more than running a no-op task.
 * An abort before the signal exists is remembered and applied when it is created, so a late reader still
 * sees an aborted signal with the same reason.
 */
export class LazyAbortController implements AbortController {
  private real: AbortController | undefined;
  private abortedWith: { reason: unknown } | undefined;

  get signal(): AbortSignal {
    if (!this.real) {
      this.real = new AbortController();
      if (this.abortedWith) this.real.abort(this.abortedWith.reason);
    }
    return this.real.signal;
  }

  abort(reason?: unknown): void {
    if (this.abortedWith) return;
    if (this.real) {
      this.real.abort(reason);
      this.abortedWith = { reason: this.real.signal.reason };
    } else {
      // Same default reason a real controller gives.
      this.abortedWith = { reason: reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason };
    }
  }
}
