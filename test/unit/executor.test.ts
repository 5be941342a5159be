import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import { TimeLimitExceeded } from "../../src/errors.ts";
import { MESSAGE_VERSION, type TaskMessage } from "../../src/protocol/message.ts";
import { currentTaskContext } from "../../src/tasks/context.ts";
import { defineTask } from "../../src/tasks/define.ts";
import type { TaskDefinition } from "../../src/tasks/definition.ts";
import { executeInline, executeInlineNow, FAIL_FROM_OUTSIDE, type ExecOutcome } from "../../src/worker/executor.ts";
import type { PoolJob } from "../../src/worker/pool.ts";

const msg: TaskMessage = { v: MESSAGE_VERSION, id: "id-1", task: "t.x", args: [], kwargs: {}, queue: "default", priority: 0, retries: 0, sentAt: 0 };

function job(def: TaskDefinition, limits: PoolJob["limits"] = {}): PoolJob & { warn: ReturnType<typeof vi.fn> } {
  const logger = pino({ level: "silent" });
  const warn = vi.fn();
  logger.warn = warn as never;
  return { def, msg, deliveries: 1, controller: new AbortController(), limits, logger, progress: () => {}, warn };
}

function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe("executeInline / executeInlineNow", () => {
  it("a task is finished once, by whichever comes first: here an error from outside its call chain", async () => {
    type Failable = { [FAIL_FROM_OUTSIDE]: (e: unknown) => boolean };
    let ctx: Failable | undefined;
    const def = defineTask("t.x", () => {
      ctx = currentTaskContext() as unknown as Failable;
      return new Promise(() => {});
    });
    const j = job(def as TaskDefinition);
    const outcomes: ExecOutcome[] = [];
    executeInlineNow(j, (o) => outcomes.push(o));
    expect(outcomes).toEqual([]);
    expect(ctx![FAIL_FROM_OUTSIDE](new Error("stray"))).toBe(true);
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toMatchObject({ kind: "failure", error: { message: "stray" } });
    expect(j.controller.signal.aborted).toBe(true);
    // Once finished, later errors are not the task's outcome any more.
    expect(ctx![FAIL_FROM_OUTSIDE](new Error("again"))).toBe(false);
    expect(outcomes).toHaveLength(1);
  });

  it("a synchronous handler that overruns its hard limit keeps its outcome, and the overrun is logged", async () => {
    const def = defineTask("t.x", () => {
      spin(120);
      return "done";
    });
    const j = job(def as TaskDefinition, { timeLimitMs: 40 });
    const outcome = await executeInline(j);
    expect(outcome).toMatchObject({ kind: "success", value: "done" });
    expect(j.warn).toHaveBeenCalledTimes(1);
    expect(String(j.warn.mock.calls[0]?.[0])).toMatch(/^task t\.x\[id-1\] returned after 0\.\d s, past its hard time limit of 0\.04 s: .*pool: process/);
  });

  it("an async handler past its hard limit fails with TimeLimitExceeded, without the overrun warning", async () => {
    const def = defineTask("t.x", () => new Promise((r) => setTimeout(r, 500)));
    const j = job(def as TaskDefinition, { timeLimitMs: 30 });
    const outcome = await executeInline(j);
    expect(outcome.kind).toBe("failure");
    expect((outcome as { error: Error }).error).toBeInstanceOf(TimeLimitExceeded);
    expect(j.warn).not.toHaveBeenCalled();
  });

  it("limits longer than a timer can wait (about 24.8 days) do not fire at once", async () => {
    const def = defineTask("t.x", () => new Promise((r) => setTimeout(() => r("slow but fine"), 50)));
    const thirtyDays = 30 * 86_400_000;
    const j = job(def as TaskDefinition, { timeLimitMs: thirtyDays + 1000, softTimeLimitMs: thirtyDays });
    const outcome = await executeInline(j);
    expect(outcome).toMatchObject({ kind: "success", value: "slow but fine" });
    expect(j.controller.signal.aborted).toBe(false);
  });
});
