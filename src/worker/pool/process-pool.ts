import type { ChildProcess } from "node:child_process";
import type { Logger } from "pino";
import { TaskLoadError, TimeLimitExceeded, toError, WorkerLostError, WorkerShutdownError } from "../../errors.ts";
import type { ExecOutcome } from "../executor.ts";
import type { Pool, PoolJob } from "../pool.ts";
import { isFromChild, sendTo, spawnChild } from "./child-process.ts";
import { reviveOutcome, serializeError, type FromChild } from "./protocol.ts";
import { forwardChildLog } from "./child-log.ts";
import { timerMs } from "../../tasks/time-limits.ts";

export interface ProcessPoolOptions {
  /** Children kept running (the worker's concurrency). */
  size: number;
  tasksDir: string;
  logger: Logger;
  /** pino level name for the children's loggers. */
  loglevel: string;
  /** Replace a child after this many tasks (0: never). */
  maxTasksPerChild?: number;
  /** Replace a child whose resident memory exceeds this many KiB after a task (0: never). */
  maxMemoryPerChildKb?: number;
  /** After a terminate or lost lease aborts a task's signal, how long it has before its child is killed. */
  terminateGraceMs?: number;
}

interface ActiveJob {
  id: number;
  job: PoolJob;
  startedAt: number;
  resolve: (o: ExecOutcome) => void;
  timers: NodeJS.Timeout[];
  /** Set when the pool kills the child on purpose: the task's outcome is this error. */
  killedWith?: Error;
  detach: () => void;
}

interface Slot {
  proc: ChildProcess;
  pid: number;
  state: "starting" | "idle" | "busy" | "retiring" | "dead";
  tasks: number;
  job?: ActiveJob;
  ready: Promise<void>;
}

const MiB = 1024 * 1024;

/**
 * Runs each task in a child process, like Celery's prefork pool: CPU-bound tasks use one core each, and a
 * hard time limit is real because a child stuck in `while (true) {}` can be killed. The pool keeps `size`
 * children: one that is killed, crashes or is recycled is replaced at once, and the task it was running
 * resolves as a failure (TimeLimitExceeded, or WorkerLostError for a crash), which the worker retries or
 * dead-letters by policy, so nothing is lost.
 *
 * Written here rather than with tinypool: the worker needs, per task, a hard kill that keeps the pool's
 * size, a typed reason for a child's death, the child's log lines and progress on the way, and a memory
 * check on the child's own RSS; tinypool's child_process runtime has no channel for the middle two.
 */
export class ProcessPool implements Pool {
  readonly kind = "process";
  private readonly slots = new Set<Slot>();
  private readonly idle: Slot[] = [];
  private waiters: ((s: Slot) => void)[] = [];
  private closing = false;
  private nextJobId = 1;
  private failedStarts = 0;
  private readonly grace: number;

  constructor(private readonly opts: ProcessPoolOptions) {
    this.grace = opts.terminateGraceMs ?? 2000;
  }

  /** Live children (starting, idle or busy). */
  get size(): number {
    let n = 0;
    for (const s of this.slots) if (s.state !== "dead" && s.state !== "retiring") n++;
    return n;
  }

  get pids(): number[] {
    return [...this.slots].filter((s) => s.state !== "dead").map((s) => s.pid);
  }

  /** Start every child and wait until each has loaded the tasks; fails with the first child's load error. */
  async start(): Promise<void> {
    const slots = Array.from({ length: this.opts.size }, () => this.spawn());
    await Promise.all(slots.map((s) => s.ready));
  }

  private spawn(): Slot {
    const proc = spawnChild();
    let markReady!: () => void;
    let fail!: (err: Error) => void;
    const ready = new Promise<void>((resolve, reject) => {
      markReady = resolve;
      fail = reject;
    });
    ready.catch(() => {}); // start() reports it; a replacement's failure is logged on exit
    const slot: Slot = { proc, pid: proc.pid ?? -1, state: "starting", tasks: 0, ready };
    this.slots.add(slot);
    let fatal: string | undefined;
    proc.on("message", (m: unknown) => {
      if (!isFromChild(m)) return;
      if (m.type === "ready") {
        this.failedStarts = 0;
        markReady();
        this.release(slot);
      } else if (m.type === "fatal") {
        fatal = m.message;
      } else this.onMessage(slot, m);
    });
    proc.on("error", (err) => {
      fatal ??= err.message;
      this.opts.logger.error(`pool child could not be started: ${err.message}`);
    });
    proc.on("exit", (code, signal) => {
      const wasStarting = slot.state === "starting";
      slot.state = "dead";
      this.slots.delete(slot);
      const at = this.idle.indexOf(slot);
      if (at >= 0) this.idle.splice(at, 1);
      if (wasStarting) fail(new TaskLoadError(`pool child could not load the tasks: ${fatal ?? `exited with ${signal ?? `code ${code}`}`}`));
      const active = slot.job;
      if (active) {
        slot.job = undefined;
        const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
        const error = active.killedWith ?? new WorkerLostError(`pool child ${slot.pid} ${how} while running the task`);
        if (!active.killedWith) this.opts.logger.error(`task ${label(active.job)}: pool child ${slot.pid} ${how}; replacing it`);
        this.settle(active, { kind: "failure", error, runtimeMs: performance.now() - active.startedAt });
      }
      if (this.closing) return;
      if (wasStarting) {
        // A child that cannot even start would be respawned in a tight loop: back off, and say why.
        this.failedStarts++;
        const delay = Math.min(500 * 2 ** this.failedStarts, 10_000);
        this.opts.logger.error(`pool child ${slot.pid} failed to start (${fatal ?? signal ?? code}); retrying in ${delay} ms`);
        setTimeout(() => !this.closing && this.spawn(), delay).unref();
      } else this.spawn();
    });
    sendTo(proc, { type: "init", tasksDir: this.opts.tasksDir, loglevel: this.opts.loglevel });
    return slot;
  }

  private onMessage(slot: Slot, m: FromChild): void {
    const active = slot.job;
    switch (m.type) {
      case "log":
        forwardChildLog(active && m.jobId === active.id ? active.job.logger : this.opts.logger, m.line, slot.pid);
        return;
      case "progress":
        if (active && m.jobId === active.id) active.job.progress(m.fraction, m.note);
        return;
      case "done": {
        if (!active || m.jobId !== active.id) return;
        slot.job = undefined;
        slot.tasks++;
        this.settle(active, reviveOutcome(m.outcome));
        const maxTasks = this.opts.maxTasksPerChild ?? 0;
        const maxKb = this.opts.maxMemoryPerChildKb ?? 0;
        if (maxTasks > 0 && slot.tasks >= maxTasks) {
          this.retire(slot, `after ${slot.tasks} tasks (max_tasks_per_child)`);
        } else if (maxKb > 0 && m.rssBytes > maxKb * 1024) {
          this.retire(slot, `using ${(m.rssBytes / MiB).toFixed(0)} MiB > max_memory_per_child ${(maxKb / 1024).toFixed(0)} MiB`);
        } else this.release(slot);
        return;
      }
      default:
        return;
    }
  }

  /** Replace a child that did its share: a new one starts now, the old one exits once idle. */
  private retire(slot: Slot, why: string): void {
    this.opts.logger.info(`pool child ${slot.pid} recycled ${why}`);
    slot.state = "retiring";
    // It is idle and its "done" has arrived (IPC keeps order), so nothing it says is lost by ending it now.
    // The exit handler spawns the replacement.
    stopChild(slot.proc);
    setTimeout(() => slot.state !== "dead" && slot.proc.kill("SIGKILL"), 5000).unref();
  }

  private release(slot: Slot): void {
    if (slot.state === "dead" || slot.state === "retiring") return;
    if (this.closing) {
      stopChild(slot.proc);
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) {
      slot.state = "busy";
      waiter(slot);
    } else {
      slot.state = "idle";
      this.idle.push(slot);
    }
  }

  private acquire(): Promise<Slot> {
    const slot = this.idle.pop();
    if (slot) {
      slot.state = "busy";
      return Promise.resolve(slot);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async run(job: PoolJob): Promise<ExecOutcome> {
    const slot = await this.acquire();
    return new Promise<ExecOutcome>((resolve) => {
      const active: ActiveJob = { id: this.nextJobId++, job, startedAt: performance.now(), resolve, timers: [], detach: () => {} };
      slot.job = active;
      const kill = (err: Error) => {
        if (active.killedWith || slot.job !== active) return;
        active.killedWith = err;
        slot.proc.kill("SIGKILL");
      };
      const hardMs = job.limits.timeLimitMs;
      if (hardMs) {
        active.timers.push(
          setTimeout(() => {
            const err = new TimeLimitExceeded(hardMs);
            this.opts.logger.warn(`task ${label(job)}: hard time limit of ${hardMs / 1000} s exceeded; killing pool child ${slot.pid}`);
            kill(err);
            job.controller.abort(err);
          }, timerMs(hardMs)),
        );
      }
      // Terminate, lost lease or shutdown: the task sees its signal first, then its child is killed.
      const onAbort = () => {
        if (active.killedWith || slot.job !== active) return;
        const reason = toError(job.controller.signal.reason);
        sendTo(slot.proc, { type: "abort", jobId: active.id, reason: serializeError(reason) });
        active.timers.push(
          setTimeout(() => {
            this.opts.logger.warn(`task ${label(job)}: still running ${this.grace / 1000} s after it was aborted (${reason.message}); killing pool child ${slot.pid}`);
            kill(reason);
          }, this.grace),
        );
      };
      job.controller.signal.addEventListener("abort", onAbort, { once: true });
      active.detach = () => job.controller.signal.removeEventListener("abort", onAbort);
      sendTo(slot.proc, {
        type: "run",
        jobId: active.id,
        msg: job.msg,
        deliveries: job.deliveries,
        ...(job.limits.softTimeLimitMs ? { softTimeLimitMs: job.limits.softTimeLimitMs } : {}),
      });
      if (job.controller.signal.aborted) onAbort();
    });
  }

  private settle(active: ActiveJob, outcome: ExecOutcome): void {
    for (const t of active.timers) clearTimeout(t);
    active.detach();
    active.resolve(outcome);
  }

  /** End every child: idle ones by closing their channel (SIGKILL if they linger), busy ones at once (the worker has handed their tasks back). */
  async close(): Promise<void> {
    this.closing = true;
    const live = [...this.slots];
    await Promise.all(
      live.map(
        (slot) =>
          new Promise<void>((resolve) => {
            if (slot.state === "dead") return resolve();
            slot.proc.once("exit", () => resolve());
            if (slot.job) {
              // Killed on purpose, like a task past its time limit: its exit is not a lost child to report
              // (and the worker is not replacing it), and the task's outcome is the shutdown it was handed back for.
              slot.job.killedWith ??= new WorkerShutdownError();
              slot.proc.kill("SIGKILL");
            } else stopChild(slot.proc);
            setTimeout(() => slot.state !== "dead" && slot.proc.kill("SIGKILL"), this.grace).unref();
          }),
      ),
    );
  }
}

/** Children ignore SIGTERM (see child.ts); closing the IPC channel is how they are asked to exit. */
function stopChild(proc: ChildProcess): void {
  if (proc.connected) proc.disconnect();
}

function label(job: PoolJob): string {
  return `${job.msg.task}[${job.msg.id}]`;
}
