import { describe, expect, it } from "vitest";
import { celeryMetaFromRecord, toTaskMessage } from "../../src/celery/codec.ts";
import { defineCeleryTask } from "../../src/celery/define.ts";
import { parseRevoke } from "../../src/celery/revoke.ts";
import { decodeCeleryMessage, decodeResultMeta, encodeCeleryTask } from "../../src/protocol/celery/index.ts";
import { taskMessageSchema } from "../../src/protocol/message.ts";
import { encodeResult } from "../../src/results/record.ts";

describe("toTaskMessage", () => {
  it("gives the worker a valid TaskMessage with Celery's id, times, limits and inverted priority", () => {
    const { raw } = encodeCeleryTask({
      task: "tasks.add",
      args: [1, 2],
      kwargs: { z: "ü" },
      now: 1_700_000_000_000,
      countdownMs: 5000,
      expiresInMs: 60_000,
      priority: 9,
      hardTimeLimitMs: 30_000,
      softTimeLimitMs: 20_000,
    });
    const req = decodeCeleryMessage(raw);
    const msg = toTaskMessage(req, "celery", 1_700_000_000_100);
    expect(taskMessageSchema.parse(msg)).toEqual(msg);
    expect(msg).toMatchObject({ id: req.id, task: "tasks.add", args: [1, 2], kwargs: { z: "ü" }, queue: "celery", priority: 0, retries: 0 });
    expect(msg.eta).toBe(1_700_000_005_000);
    expect(msg.expires).toBe(1_700_000_060_000);
    expect(msg).toMatchObject({ timeLimitMs: 30_000, softTimeLimitMs: 20_000 });
  });
});

describe("celeryMetaFromRecord", () => {
  const rec = (r: object) => encodeResult({ id: "ignored", ...r } as Parameters<typeof encodeResult>[0]);
  it("maps the worker's records to the metas a Celery client reads", () => {
    expect(decodeResultMeta(celeryMetaFromRecord("t1", rec({ state: "SUCCESS", result: { a: [1] } }))!)).toMatchObject({ state: "SUCCESS", result: { a: [1] }, taskId: "t1" });
    const failed = decodeResultMeta(celeryMetaFromRecord("t2", rec({ state: "FAILURE", error: { type: "RangeError", message: "too big", stack: "RangeError: too big\n  at x" } }))!);
    expect(failed.error?.pythonClass).toBe("builtins.ValueError");
    expect(failed.traceback).toContain("RangeError: too big");
    const missing = celeryMetaFromRecord("t3", rec({ state: "FAILURE", task: "nope.x", error: { type: "NotRegisteredError", message: 'task "nope.x" is not registered' } }));
    expect(missing?.result).toEqual({ exc_type: "NotRegistered", exc_message: ["nope.x"], exc_module: "celery.exceptions" });
    expect(celeryMetaFromRecord("t4", rec({ state: "EXPIRED" }))?.result).toMatchObject({ exc_type: "TaskRevokedError", exc_message: ["expired"] });
    expect(celeryMetaFromRecord("t5", rec({ state: "STARTED" }))).toBeUndefined();
  });
});

describe("parseRevoke", () => {
  const envelope = (body: object) =>
    JSON.stringify({ body: Buffer.from(JSON.stringify(body)).toString("base64"), "content-type": "application/json", properties: { body_encoding: "base64" } });
  it("reads Celery's broadcast revoke (one id or many, terminate flag)", () => {
    expect(parseRevoke(envelope({ method: "revoke", arguments: { task_id: "a", terminate: false }, destination: null }))).toEqual({ ids: ["a"], terminate: false });
    expect(parseRevoke(envelope({ method: "revoke", arguments: { task_id: ["a", "b"], terminate: true } }))).toEqual({ ids: ["a", "b"], terminate: true });
  });
  it("ignores other commands, revokes addressed to named Celery nodes, and junk", () => {
    expect(parseRevoke(envelope({ method: "ping", arguments: {} }))).toBeUndefined();
    expect(parseRevoke(envelope({ method: "revoke", arguments: { task_id: "a" }, destination: ["celery@host"] }))).toBeUndefined();
    expect(parseRevoke("not json")).toBeUndefined();
  });
});

describe("defineCeleryTask", () => {
  it("has Celery's retry semantics: errors are final unless named in autoretryFor; retry() allowed up to maxRetries", () => {
    const t = defineCeleryTask("tasks.t", { autoretryFor: ["TimeoutError"], maxRetries: 5 }, () => 1);
    expect(t.name).toBe("tasks.t");
    expect(t.options.retry).toMatchObject({ max: 5, countdown: 180, backoff: false, jitter: false });
    const timeout = Object.assign(new Error("slow"), { name: "TimeoutError" });
    expect(t.options.retryOn?.(timeout)).toBe(true);
    expect(t.options.retryOn?.(new TypeError("x"))).toBe(false);
  });
});
