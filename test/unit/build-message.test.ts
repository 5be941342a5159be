import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { buildEnqueueItem } from "../../src/client/build-message.ts";
import type { SendOptions } from "../../src/client/types.ts";
import { QWorkerError, UsageError } from "../../src/errors.ts";
import { decodeMessage } from "../../src/protocol/message.ts";
import { defineTask } from "../../src/tasks/define.ts";

const NOW = Date.parse("2030-01-02T03:04:05.000Z");
const defaults = { queue: "default", maxPayloadBytes: 1024 };

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW);
});
afterEach(() => {
  vi.useRealTimers();
});

function build(options: SendOptions = {}, args: unknown[] = [1234]) {
  return buildEnqueueItem("shop.send_invoice_email", args, options, defaults);
}

function usageError(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as UsageError).message;
  }
  throw new Error("expected a UsageError");
}

describe("buildEnqueueItem", () => {
  it("builds a valid v1 message with a fresh id, in the default queue, due now", () => {
    const item = build();
    const msg = decodeMessage(item.payload);
    expect(msg).toMatchObject({ v: 1, task: "shop.send_invoice_email", args: [1234], kwargs: {}, queue: "default", priority: 0, retries: 0, sentAt: NOW });
    expect(item.id).toBe(msg.id);
    expect(item.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(item.queue).toBe("default");
    expect(item.dueAt).toBeUndefined();
    expect(build().id).not.toBe(item.id);
  });

  it("countdown sets eta and dueAt that many seconds from now", () => {
    const item = build({ countdown: 2 });
    expect(item.dueAt).toBe(NOW + 2000);
    expect(decodeMessage(item.payload).eta).toBe(NOW + 2000);
  });

  it("eta accepts an ISO-8601 string, a Date and epoch ms", () => {
    expect(build({ eta: "2030-01-02T03:05:00Z" }).dueAt).toBe(Date.parse("2030-01-02T03:05:00Z"));
    expect(build({ eta: new Date(NOW + 5000) }).dueAt).toBe(NOW + 5000);
    expect(build({ eta: NOW + 7000 }).dueAt).toBe(NOW + 7000);
  });

  it("rejects a bad eta or countdown", () => {
    expect(usageError(() => build({ eta: "tomorrow-ish" }))).toBe('eta: expected a Date, an ISO-8601 date or epoch milliseconds, found "tomorrow-ish"');
    expect(usageError(() => build({ countdown: -1 }))).toMatch(/^countdown must be a number of seconds >= 0/);
    expect(usageError(() => build({ countdown: Number.NaN }))).toMatch(/^countdown must be/);
    expect(usageError(() => build({ countdown: "5" as unknown as number }))).toBe('countdown must be a number of seconds >= 0, found "5"');
    expect(build({ eta: NOW + 60_000 }).dueAt).toBe(NOW + 60_000);
  });

  it("refuses a number sent as a string of digits for eta or expires (Date.parse reads \"300\" as the year 300)", () => {
    expect(usageError(() => build({ expires: "300" }))).toMatch(/^expires: .*found the string "300": pass a number, not a string of digits$/);
    expect(usageError(() => build({ eta: "1700000000000" }))).toMatch(/^eta: .*found the string "1700000000000": pass a number/);
    expect(decodeMessage(build({ expires: 300 }).payload).expires).toBe(NOW + 300_000);
  });

  it("refuses an empty uniqueKey (a key on one broker, none on the other) and a uniqueFor that is not seconds >= 0 or has no key", () => {
    expect(usageError(() => build({ uniqueKey: "" }))).toBe('uniqueKey must be a non-empty string, found "": leave it unset to send without one');
    expect(usageError(() => build({ uniqueKey: "k", uniqueFor: -1 }))).toMatch(/^uniqueFor must be a number of seconds from 0 \(until the task ends\)/);
    expect(usageError(() => build({ uniqueKey: "k", uniqueFor: "5" as unknown as number }))).toMatch(/^uniqueFor must be .*found "5"$/);
    expect(usageError(() => build({ uniqueFor: 5 }))).toBe("uniqueFor (5 s) needs a uniqueKey: it says how long that key is held");
    expect(build({ uniqueKey: "k", uniqueFor: 0 })).toMatchObject({ uniqueKey: "k", uniqueForMs: 0 });
    expect(usageError(() => build(null as unknown as SendOptions))).toBe("options must be an object, found null");
  });

  it("countdown and eta at most 10 years ahead, so every due time stays displayable", () => {
    const tenYears = 10 * 365 * 86_400;
    expect(build({ countdown: tenYears }).dueAt).toBe(NOW + tenYears * 1000);
    for (const countdown of [1e12, 1e20, Number.POSITIVE_INFINITY]) {
      expect(usageError(() => build({ countdown }))).toBe(`countdown must be at most ${tenYears} seconds (10 years), found ${countdown}: it is in seconds, not milliseconds`);
    }
    expect(build({ eta: NOW + tenYears * 1000 }).dueAt).toBe(NOW + tenYears * 1000);
    expect(usageError(() => build({ eta: "2999-01-01T00:00:00Z" }))).toBe('eta must be at most 10 years from now, found "2999-01-01T00:00:00Z"');
    expect(usageError(() => build({ eta: 1e20 }))).toBe("eta must be at most 10 years from now, found 100000000000000000000");
  });

  it("expires: seconds from now or a date", () => {
    expect(decodeMessage(build({ expires: 60 }).payload).expires).toBe(NOW + 60_000);
    expect(decodeMessage(build({ expires: "2030-01-02T04:00:00Z" }).payload).expires).toBe(Date.parse("2030-01-02T04:00:00Z"));
    expect(usageError(() => build({ expires: "later" }))).toBe('expires: expected seconds from now (e.g. 300) or an ISO-8601 date (e.g. 2030-01-01T12:00:00Z), found "later"');
  });

  it("priority must be an integer 0..9", () => {
    expect(build({ priority: 9 }).priority).toBe(9);
    for (const p of [-1, 10, 2.5]) expect(usageError(() => build({ priority: p }))).toBe(`priority must be an integer from 0 to 9, found ${p}`);
  });

  it("queue, kwargs, limits, uniqueness and ignoreResult end up in the message and the item", () => {
    const item = build({ queue: "emails", kwargs: { urgent: true }, timeLimit: 5, softTimeLimit: 4, maxRetries: 1, uniqueKey: "inv-1234", uniqueFor: 30, ignoreResult: true, id: "my-id" });
    expect(item).toMatchObject({ id: "my-id", queue: "emails", uniqueKey: "inv-1234", uniqueForMs: 30_000 });
    expect(decodeMessage(item.payload)).toMatchObject({ id: "my-id", queue: "emails", kwargs: { urgent: true }, timeLimitMs: 5000, softTimeLimitMs: 4000, maxRetries: 1, uniqueKey: "inv-1234", ignoreResult: true });
  });

  it("a soft time limit not below the hard one is refused (it would never fire), here and in defineTask", () => {
    for (const [soft, hard] of [[5, 2], [2, 2]] as const) {
      expect(usageError(() => build({ softTimeLimit: soft, timeLimit: hard }))).toBe(
        `softTimeLimit (${soft} s) must be below timeLimit (${hard} s): the soft limit warns the task before the hard one stops it`,
      );
    }
    expect(decodeMessage(build({ softTimeLimit: 5 }).payload).softTimeLimitMs).toBe(5000);
    expect(() => defineTask({ name: "t.slow", softTimeLimit: 5, timeLimit: 2 }, () => 1)).toThrow(
      new QWorkerError("E_TASK_DEFINITION", "task t.slow: softTimeLimit (5 s) must be below timeLimit (2 s): the soft limit warns the task before the hard one stops it"),
    );
    expect(defineTask({ name: "t.ok", softTimeLimit: 1, timeLimit: 2 }, () => 1).options.softTimeLimit).toBe(1);
  });

  it("a time limit longer than a timer can wait (2147483 s, about 24 days) is refused, here and in defineTask", () => {
    const fix = "(about 24 days, the longest a timer can wait), found 2592000: leave it unset for no limit";
    expect(usageError(() => build({ timeLimit: 30 * 86_400 }))).toBe(`timeLimit must be at most 2147483 seconds ${fix}`);
    expect(usageError(() => build({ softTimeLimit: 30 * 86_400 }))).toBe(`softTimeLimit must be at most 2147483 seconds ${fix}`);
    expect(decodeMessage(build({ timeLimit: 2_147_483 }).payload).timeLimitMs).toBe(2_147_483_000);
    expect(() => defineTask({ name: "t.month", timeLimit: 30 * 86_400 }, () => 1)).toThrow(
      new QWorkerError("E_TASK_DEFINITION", `task t.month: timeLimit must be at most 2147483 seconds ${fix}`),
    );
  });

  it("an oversize payload is refused before anything is sent, with the fix in the message", () => {
    const msg = usageError(() => build({}, ["x".repeat(2000)]));
    expect(msg).toMatch(/^payload of shop\.send_invoice_email is \d+ bytes, over max_payload_bytes \(1024\): pass a reference/);
  });

  it("arguments that cannot be JSON are refused", () => {
    expect(usageError(() => build({}, [10n]))).toMatch(/^arguments of shop\.send_invoice_email cannot be sent as JSON/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(usageError(() => build({}, [cyclic]))).toMatch(/cannot be sent as JSON/);
  });

  it("an empty, blank or over-long task name is refused (every worker would reject it as poisoned)", () => {
    for (const name of ["", "   "]) {
      expect(usageError(() => buildEnqueueItem(name, [], {}, defaults))).toBe(
        `task name must not be empty or blank, found ${JSON.stringify(name)}: give the name the task was defined with, e.g. "shop.send_invoice_email"`,
      );
    }
    expect(usageError(() => buildEnqueueItem(undefined as unknown as string, [], {}, defaults))).toMatch(/^task name must not be empty or blank, found undefined/);
    expect(usageError(() => buildEnqueueItem("t".repeat(201), [], {}, defaults))).toBe("task name is 201 characters, over the 200 a worker accepts: shorten it");
    expect(decodeMessage(buildEnqueueItem("t".repeat(200), [], {}, defaults).payload).task).toHaveLength(200);
  });

  it("args must be an array", () => {
    expect(usageError(() => buildEnqueueItem("t", "1234" as unknown as unknown[], {}, defaults))).toBe("args must be an array, found string");
  });
});

describe("a message a worker would refuse is refused at send time, whatever option made it", () => {
  const defaults = { queue: "default", maxPayloadBytes: 1 << 20 };
  it("an empty queue, a Celery bridge queue, and countdown with eta are refused in words of the option", () => {
    expect(() => buildEnqueueItem("demo.add", [], { queue: "" }, defaults)).toThrow(/^queue must be a queue name, found "": leave it unset/);
    expect(() => buildEnqueueItem("demo.add", [], { queue: "celery:billing" }, defaults)).toThrow(
      /^queue celery:billing is where a worker keeps the Celery messages it took from kombu queue billing: send to Celery workers with --celery/,
    );
    expect(() => buildEnqueueItem("demo.add", [], { countdown: 5, eta: new Date() }, defaults)).toThrow(/^give either countdown or eta, not both$/);
  });

  it("a 0 s time limit, an id over 200 characters", () => {
    expect(() => buildEnqueueItem("demo.add", [], { timeLimit: 0 }, defaults)).toThrow(/^timeLimit must be a number of seconds above 0 when sent, found 0$/);
    expect(() => buildEnqueueItem("demo.add", [], { softTimeLimit: -1 }, defaults)).toThrow(/^softTimeLimit must be a number of seconds above 0 when sent, found -1$/);
    expect(() => buildEnqueueItem("demo.add", [], { id: "x".repeat(201) }, defaults)).toThrow(/^cannot send demo\.add: a worker would refuse its message \(id: /);
    expect(() => buildEnqueueItem("demo.add", [], { id: "x".repeat(200), timeLimit: 1 }, defaults)).not.toThrow();
  });

  it("arguments nested deeper than a worker reads (512 levels)", () => {
    let deep: unknown = 1;
    for (let i = 0; i < 600; i++) deep = [deep];
    const big = { queue: "default", maxPayloadBytes: 1 << 20 };
    expect(() => buildEnqueueItem("demo.add", [deep], {}, big)).toThrow(/^cannot send demo\.add: a worker would refuse its message \(payload "args" nests deeper than 512 levels/);
    expect(() => buildEnqueueItem("demo.add", [], { kwargs: { a: deep } }, big)).toThrow(/\(payload "kwargs" nests deeper than 512 levels/);
    let fine: unknown = 1;
    for (let i = 0; i < 500; i++) fine = [fine];
    expect(() => buildEnqueueItem("demo.add", [fine], {}, big)).not.toThrow();
  });
});
