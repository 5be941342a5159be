import { describe, expect, it } from "vitest";
import { defineTask } from "../../src/tasks/define.ts";
import type { TaskOptions } from "../../src/tasks/definition.ts";

/** The one-line E_TASK_DEFINITION message defineTask throws for these options, or "ok". */
function verdict(options: unknown): string {
  try {
    defineTask(options as TaskOptions, () => 1);
    return "ok";
  } catch (err) {
    expect(err).toMatchObject({ code: "E_TASK_DEFINITION" });
    return (err as Error).message;
  }
}

describe("defineTask's options", () => {
  it("refuses values that would misbehave only once the task runs, naming the task, option, value and fix", () => {
    expect(verdict({ name: "a.b", rateLimit: "lots" })).toBe('task a.b: option rateLimit: expected N/s, N/m or N/h with N > 0, e.g. "100/m", found "lots"');
    expect(verdict({ name: "a.b", rateLimit: "0/s" })).toMatch(/^task a\.b: option rateLimit: expected N\/s/);
    expect(verdict({ name: "" })).toBe('task (unnamed): option name: must not be empty: a dotted name such as "shop.send_invoice_email", found ""');
    expect(verdict({ name: "a.b", timeLimit: -1 })).toBe("task a.b: option timeLimit: expected a number of seconds >= 0 (0 or unset: no limit), found -1");
    expect(verdict({ name: "a.b", retry: { max: -1 } })).toBe("task a.b: option retry.max: expected a number >= 0, found -1");
    expect(verdict({ name: "a.b", priority: 12 })).toBe("task a.b: option priority: expected an integer from 0 to 9, found 12");
    expect(verdict({ name: "a.b", queue: " " })).toMatch(/^task a\.b: option queue: must not be empty/);
    expect(verdict({ name: "a.b", retryOn: 5 })).toBe("task a.b: option retryOn: expected a function (err) => boolean, found 5");
  });

  it("refuses an unknown option, nested ones by their path (a typo would be silently ignored)", () => {
    expect(verdict({ name: "a.b", timelimit: 5 })).toBe('task a.b: unknown option "timelimit" (did you mean "timeLimit"? see the task options in the README)');
    expect(verdict({ name: "a.b", retry: { maxx: 1 } })).toBe('task a.b: unknown option "retry.maxx" (did you mean "retry.max"? see the task options in the README)');
    // Celery's spelling of an option.
    expect(verdict({ name: "a.b", soft_time_limit: 5 })).toBe('task a.b: unknown option "soft_time_limit" (did you mean "softTimeLimit"? see the task options in the README)');
    expect(verdict({ name: "a.b", bogus: 1 })).toBe('task a.b: unknown option "bogus" (see the task options in the README)');
  });

  it("accepts what the README documents, and 0 as no time limit", () => {
    expect(verdict("a.b")).toBe("ok");
    expect(
      verdict({ name: "a.b", queue: "q", priority: 9, retry: { max: 0, countdown: 2 }, retryOn: () => true, timeLimit: 10, softTimeLimit: 5, params: ["x"], ignoreResult: true, secretArgs: [0, "password"], rateLimit: "100/m" }),
    ).toBe("ok");
    expect(verdict({ name: "a.b", retry: false, secretArgs: true, rateLimit: "4" })).toBe("ok");
    expect(verdict({ name: "a.b", timeLimit: 0, softTimeLimit: 5 })).toBe("ok");
  });
});
