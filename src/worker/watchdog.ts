import type { Logger } from "pino";
import type { Transport, WorkerInfo } from "../broker/transport.ts";
import type { WorkerEvents } from "./events.ts";
import { ms } from "./format.ts";
import { HealthFile } from "./health-file.ts";

/** The parts of a Worker the watchdog looks at. */
export interface WatchedWorker {
  readonly id: string;
  readonly events: WorkerEvents;
  info(): WorkerInfo;
}

export interface WatchdogOptions {
  worker: WatchedWorker;
  transport: Transport;
  logger: Logger;
  queues: string[];
  concurrency: number;
  checkEveryMs?: number;
  /** No housekeeping round reached the broker for this long: report the broker as not answering. */
  silentAfterMs?: number;
  /** Work waiting, free slots, yet nothing reserved for this long: the consume loop is stuck. */
  stallAfterMs?: number;
  /** Where to publish liveness for `qworker health` (none: no file). */
  healthFile?: HealthFile;
  now?: () => number;
  /** Cumulative CPU time of the process, in ms (every thread: Node 20 has no per-thread figure); tests fake it. */
  cpuMs?: () => number;
}

function processCpuMs(): number {
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1000;
}

/**
 * Watches a worker from outside its loops, because the failures that matter most leave no error to catch:
 * with commands queued until Redis returns, an outage just makes calls wait, and a socket that died
 * without a FIN (a failover, a NAT dropping state) makes a BLPOP wait forever. Once a second it
 * - logs an outage once, when housekeeping has not reached the broker for `silentAfterMs`, and its end;
 * - when tasks are waiting and slots are free but nothing was reserved for `stallAfterMs`, asks the
 *   transport to rebuild its connections (commands in flight are re-sent; every script is token-checked,
 *   so a re-sent settle or extend is harmless);
 * - writes the health file that `qworker health` reads.
 */
export class Watchdog {
  private readonly o: Required<Omit<WatchdogOptions, "healthFile">> & { healthFile?: HealthFile };
  private timer: NodeJS.Timeout | undefined;
  private lastTick: number;
  /** When the previous round ran: a round far later than due means the event loop was blocked or the process did not run. */
  private lastCheck: number;
  /** CPU time at the previous round: what a late round's gap cost tells why it was late. */
  private lastCpuMs: number;
  private lastTaken: number;
  private lastProgress: number;
  private lastRebuild = 0;
  private silentSince: number | undefined;
  /** The worker logged this outage itself (a command failed): do not log it a second time. */
  private workerReported = false;
  private stopping = false;
  private checking = false;
  private state: "ok" | "broker-down" | "stalled" = "ok";
  private reason: string | undefined;
  private readonly off: (() => void)[] = [];

  constructor(opts: WatchdogOptions) {
    this.o = { checkEveryMs: 500, silentAfterMs: 1000, stallAfterMs: 5000, now: Date.now, cpuMs: processCpuMs, ...opts };
    const now = this.o.now();
    this.lastCpuMs = this.o.cpuMs();
    this.lastTick = this.lastCheck = this.lastTaken = this.lastProgress = now;
    const on = (event: "worker:tick" | "task:received" | "task:poisoned" | "task:expired" | "broker:down" | "broker:up" | "worker:stopping", fn: () => void) => {
      const events = this.o.worker.events as unknown as NodeJS.EventEmitter;
      events.on(event, fn);
      this.off.push(() => events.off(event, fn));
    };
    on("worker:tick", () => this.onTick());
    for (const e of ["task:received", "task:poisoned", "task:expired"] as const) on(e, () => (this.lastTaken = this.o.now()));
    on("broker:down", () => (this.workerReported = true));
    on("broker:up", () => (this.workerReported = false));
    on("worker:stopping", () => (this.stopping = true));
  }

  start(): this {
    this.timer = setInterval(() => void this.check(), this.o.checkEveryMs);
    this.timer.unref();
    this.publish();
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    for (const f of this.off.splice(0)) f();
    this.o.healthFile?.remove();
  }

  private onTick(): void {
    const now = this.o.now();
    this.lastTick = now;
    if (this.silentSince !== undefined) {
      if (!this.workerReported) this.o.logger.warn(`broker answering again after ${ms(now - this.silentSince)}; consuming`);
      this.silentSince = undefined;
    }
    if (this.state === "broker-down") this.setState("ok");
  }

  /** One round; exposed for tests. */
  async check(): Promise<void> {
    // Lateness is measured on every round, also one skipped below while an earlier round still waits for
    // the broker: a round that waits on a frozen Redis is not the event loop being blocked.
    const now = this.o.now();
    const cpuNow = this.o.cpuMs();
    const late = now - this.lastCheck - this.o.checkEveryMs;
    const cpuMs = cpuNow - this.lastCpuMs;
    this.lastCheck = now;
    this.lastCpuMs = cpuNow;
    if (late >= this.o.silentAfterMs && !this.stopping) {
      // This round's own timer ran that late, and the broker's replies sat in the socket meanwhile. Not an
      // outage, and rebuilding the connections would not help: say what it was, and give housekeeping a
      // fresh window.
      this.o.logger.warn(lateRound(late, cpuMs));
      this.lastTick = this.lastTaken = now;
    }
    if (this.checking) {
      // An earlier round still waits for the broker (up to 2 s): report a silence now, not when it gives up.
      if (!this.stopping) this.noteSilence(now);
      return;
    }
    this.checking = true;
    try {
      // A stopping worker ends its housekeeping itself: that silence is not an outage.
      if (this.stopping) {
        this.publish();
        return;
      }
      const silentFor = this.noteSilence(now);
      if (silentFor >= this.o.silentAfterMs) {
        // A connection can look healthy to the client and still be dead (no FIN after a failover):
        // after long enough, rebuild it. Connections already reconnecting are left alone.
        if (silentFor >= this.o.stallAfterMs) await this.rebuild(`broker silent for ${ms(silentFor)}`);
      } else {
        await this.checkConsuming(now);
      }
      this.publish();
    } catch (err) {
      this.o.logger.debug({ err }, "watchdog round failed");
    } finally {
      this.checking = false;
    }
  }

  /** How long housekeeping has not reached the broker; past silentAfterMs, logged once and made the state. */
  private noteSilence(now: number): number {
    const silentFor = now - this.lastTick;
    if (silentFor < this.o.silentAfterMs) return silentFor;
    if (this.silentSince === undefined) {
      this.silentSince = this.lastTick;
      if (!this.workerReported) {
        this.o.logger.error(`broker not answering for ${ms(silentFor)}; waiting for it (leased tasks stay leased and are renewed when it returns)`);
      }
    }
    this.setState("broker-down", `broker not answering for ${ms(silentFor)}`);
    return silentFor;
  }

  private async checkConsuming(now: number): Promise<void> {
    const idleFor = now - this.lastTaken;
    const free = this.o.concurrency - this.o.worker.info().active;
    if (idleFor < this.o.stallAfterMs || free <= 0) {
      if (this.state !== "ok") this.setState("ok");
      this.lastProgress = now;
      return;
    }
    const waiting = await this.readyCount();
    if (waiting === 0) {
      // Nothing to do is progress too: the loop is idle, not stuck.
      this.lastTaken = now - this.o.stallAfterMs;
      this.setState("ok");
      this.lastProgress = now;
      return;
    }
    this.setState("stalled", `${waiting} task(s) waiting and ${free} slot(s) free, but nothing reserved for ${ms(idleFor)}`);
    await this.rebuild(`consume loop made no progress for ${ms(idleFor)} with ${waiting} task(s) waiting`);
  }

  private async readyCount(): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("stats timed out")), 2000);
    });
    try {
      const counts = await Promise.race([this.o.transport.stats(this.o.queues), timeout]);
      return counts.reduce((sum, c) => sum + c.ready, 0);
    } finally {
      clearTimeout(timer);
    }
  }

  private async rebuild(why: string): Promise<void> {
    const now = this.o.now();
    if (!this.o.transport.reconnect || now - this.lastRebuild < this.o.stallAfterMs) return;
    this.lastRebuild = now;
    this.lastTaken = now;
    const dropped = await this.o.transport.reconnect();
    // With every connection already reconnecting (Redis refused or gone) there was nothing to rebuild: the
    // outage was logged once when it began, and a line every few seconds would claim work that is not done.
    if (dropped > 0) this.o.logger.warn(`${why}; rebuilding the broker connections`);
    else this.o.logger.debug(`${why}; every broker connection is already reconnecting`);
  }

  private setState(state: "ok" | "broker-down" | "stalled", reason?: string): void {
    this.state = state;
    this.reason = reason;
  }

  private publish(): void {
    const now = this.o.now();
    if (this.state === "ok") this.lastProgress = Math.max(this.lastProgress, this.lastTick);
    this.o.healthFile?.write({
      id: this.o.worker.id,
      pid: process.pid,
      progressAt: this.lastProgress,
      writtenAt: now,
      state: this.stopping ? "stopping" : this.state,
      ...(this.reason ? { reason: this.reason } : {}),
    });
  }
}

/**
 * Why a round ran `late` ms late, from the CPU the process used meanwhile. Measured on Node 20 over a 3 s gap:
 * a busy loop (a CPU-bound task) ~3000 ms; Atomics.wait or execSync in a task 1-3 ms; SIGSTOP ~1 ms. The
 * figure is the whole process's, but the lease keeper thread uses a few ms a second, so half the gap
 * separates the cases with room either side. The loop's own busy time (eventLoopUtilization) would tell a
 * stop from a synchronous wait in a small script, but not in a real worker: there a 3 s SIGSTOP counted
 * as busy loop in two runs of three. So the two are reported together.
 */
function lateRound(late: number, cpuMs: number): string {
  if (cpuMs >= late / 2) {
    return `the event loop was blocked for ${ms(late)}, most likely by a task running synchronous code; CPU-bound tasks belong in pool: process`;
  }
  return (
    `the worker's main thread did not run for ${ms(late)} and the process used ${ms(Math.max(0, cpuMs))} of CPU meanwhile, so no task kept it busy: ` +
    "the process was stopped or paused (SIGSTOP, a debugger, a paused VM or container, a suspended machine), or a task waited synchronously (Atomics.wait, execSync or another sync child_process call). " +
    "A stopped process renews no leases and sends no heartbeat: after heartbeat_ttl or lease_timeout other workers may have recovered its tasks and run them again (this worker aborts such runs at its next lease renewal)"
  );
}
