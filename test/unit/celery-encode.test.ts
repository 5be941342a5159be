import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/errors.ts";
import {
  decodeCeleryMessage,
  DEFAULT_RETRY_DELAY_MS,
  encodeCeleryRetry,
  encodeCeleryTask,
  pyReprArgs,
  pyReprKwargs,
} from "../../src/protocol/celery/index.ts";
import { onlyEntry } from "../fixtures/celery/load.ts";

const NOW = Date.UTC(2026, 10, 25, 16, 25, 20, 394);

function envelopeOf(raw: string) {
  return JSON.parse(raw) as { body: string; headers: Record<string, unknown>; properties: Record<string, unknown> } & Record<string, unknown>;
}

describe("encodeCeleryTask", () => {
  it("has exactly the envelope, header and property keys Celery 5.2 writes, in its order", () => {
    const ours = envelopeOf(encodeCeleryTask({ task: "tasks.add", args: [2, 3] }).raw);
    const theirs = envelopeOf(onlyEntry("v2-basic").raw);
    expect(Object.keys(ours)).toEqual(Object.keys(theirs));
    expect(Object.keys(ours.headers)).toEqual(Object.keys(theirs.headers));
    expect(Object.keys(ours.properties)).toEqual(Object.keys(theirs.properties));
    expect(Object.keys(ours.properties["delivery_info"] as object)).toEqual(Object.keys(theirs.properties["delivery_info"] as object));
  });

  it("writes the same header values as Celery for the same call, ids and origin aside", () => {
    const theirs = envelopeOf(onlyEntry("v2-basic").raw);
    const id = theirs.headers["id"] as string;
    const ours = envelopeOf(encodeCeleryTask({ task: "tasks.add", args: [2, 3], id, origin: theirs.headers["origin"] as string, replyTo: theirs.properties["reply_to"] as string }).raw);
    expect(ours.headers).toEqual(theirs.headers);
    expect({ ...ours.properties, delivery_tag: "x" }).toEqual({ ...theirs.properties, delivery_tag: "x" });
    // Same decoded body (the base64 text differs only by JSON whitespace).
    const body = (e: { body: string }) => JSON.parse(Buffer.from(e.body, "base64").toString("utf8"));
    expect(body(ours)).toEqual(body(theirs));
  });

  it("always sends a three-element body and a unique delivery_tag", () => {
    const a = encodeCeleryTask({ task: "t" });
    const b = encodeCeleryTask({ task: "t" });
    const body = JSON.parse(Buffer.from(envelopeOf(a.raw).body, "base64").toString("utf8"));
    expect(body).toEqual([[], {}, { callbacks: null, errbacks: null, chain: null, chord: null }]);
    expect(a.deliveryTag).not.toBe(b.deliveryTag);
    expect(a.id).not.toBe(b.id);
    expect(envelopeOf(a.raw).properties["delivery_tag"]).toBe(a.deliveryTag);
  });

  it("matches Celery's shape for countdown/expires (aware ISO eta, expiration property)", () => {
    const ours = envelopeOf(encodeCeleryTask({ task: "tasks.add", args: [2, 2], countdownMs: 30_000, expiresInMs: 60_000, now: NOW }).raw);
    expect(ours.headers["eta"]).toBe("2026-11-25T16:25:50.394000+00:00");
    expect(ours.headers["expires"]).toBe("2026-11-25T16:26:20.394000+00:00");
    expect(ours.properties["expiration"]).toBe("60000");
    const theirs = envelopeOf(onlyEntry("v2-expires-seconds").raw);
    expect(theirs.properties["expiration"]).toBe("60000");
    expect(Object.keys(ours.properties)).toEqual(Object.keys(theirs.properties));
  });

  it("chooses kombu's list for the priority and honours queue/routing", () => {
    expect(encodeCeleryTask({ task: "t" }).listKey).toBe("celery");
    expect(encodeCeleryTask({ task: "t", priority: 4 }).listKey).toBe("celery\x06\x163");
    expect(encodeCeleryTask({ task: "t", priority: 8, queue: "emails" }).listKey).toBe("emails\x06\x166");
    expect(encodeCeleryTask({ task: "t", priority: 42 }).listKey).toBe("celery\x06\x169");
    expect(encodeCeleryTask({ task: "t", queue: "q", keyPrefix: "pfx:" }).listKey).toBe("pfx:q");
    const env = envelopeOf(encodeCeleryTask({ task: "t", queue: "emails", priority: 8 }).raw);
    expect(env.properties["delivery_info"]).toEqual({ exchange: "", routing_key: "emails" });
    expect(env.properties["priority"]).toBe(8);
  });

  it("writes time limits as [hard, soft] seconds", () => {
    const env = envelopeOf(encodeCeleryTask({ task: "t", hardTimeLimitMs: 10_000, softTimeLimitMs: 5_500 }).raw);
    expect(env.headers["timelimit"]).toEqual([10, 5.5]);
    expect(envelopeOf(onlyEntry("v2-timelimit").raw).headers["timelimit"]).toEqual([10, 5]);
  });

  it("round-trips through the decoder", () => {
    const args = ["héllo ✓ 🎉", { deep: [1, { x: null }] }, 2.5, true];
    const kwargs = { name: "Zoë", list: [1, 2], nested: { a: { b: "c" } } };
    const enc = encodeCeleryTask({
      task: "tasks.echo",
      args,
      kwargs,
      eta: NOW + 1_000,
      expires: NOW + 60_000,
      priority: 6,
      retries: 2,
      rootId: "root",
      parentId: "parent",
      group: "g1",
      groupIndex: 3,
      shadow: "shadowed",
      hardTimeLimitMs: 10_000,
      softTimeLimitMs: 5_000,
      ignoreResult: true,
      queue: "emails",
      headers: { "x-extra": 1 },
      now: NOW,
    });
    const req = decodeCeleryMessage(enc.raw);
    expect(req).toMatchObject({
      protocolVersion: 2,
      id: enc.id,
      task: "tasks.echo",
      args,
      kwargs,
      eta: NOW + 1_000,
      expires: NOW + 60_000,
      priority: 6,
      retries: 2,
      rootId: "root",
      parentId: "parent",
      group: "g1",
      groupIndex: 3,
      shadow: "shadowed",
      hardTimeLimitMs: 10_000,
      softTimeLimitMs: 5_000,
      ignoreResult: true,
      deliveryInfo: { exchange: "", routingKey: "emails" },
      deliveryTag: enc.deliveryTag,
      correlationId: enc.id,
      lang: "py",
      hasWorkflow: false,
    });
    expect(req.headers["x-extra"]).toBe(1);
    expect(req.argsrepr).toBe(`('héllo ✓ 🎉', {'deep': [1, {...}]}, 2.5, True)`);
  });

  it("rejects contradictory or malformed options with a UsageError", () => {
    expect(() => encodeCeleryTask({ task: "" })).toThrow(UsageError);
    expect(() => encodeCeleryTask({ task: "t", eta: 1, countdownMs: 1 })).toThrow(/either eta or countdown/);
    expect(() => encodeCeleryTask({ task: "t", expires: 1, expiresInMs: 1 })).toThrow(/either expires or expiresIn/);
    expect(() => encodeCeleryTask({ task: "t", args: {} as unknown as unknown[] })).toThrow(/args must be a list/);
    expect(() => encodeCeleryTask({ task: "t", kwargs: [] as unknown as Record<string, unknown> })).toThrow(/kwargs must be an object/);
    expect(() => encodeCeleryTask({ task: "t", eta: Number.NaN })).toThrow(/finite/);
  });
});

describe("encodeCeleryRetry", () => {
  it("re-publishes like Celery's self.retry(): same id, retries+1, eta, parent = the task itself", () => {
    const first = decodeCeleryMessage(onlyEntry("v2-basic").raw);
    const retry = encodeCeleryRetry(first, { countdownMs: 1_000, now: NOW });
    expect(retry.id).toBe(first.id);
    expect(retry.deliveryTag).not.toBe(first.deliveryTag);
    expect(retry.listKey).toBe("celery");
    const req = decodeCeleryMessage(retry.raw);
    expect(req).toMatchObject({
      id: first.id,
      task: "tasks.add",
      args: [2, 3],
      kwargs: {},
      retries: 1,
      eta: NOW + 1_000,
      rootId: first.id,
      parentId: first.id,
      deliveryInfo: { exchange: "", routingKey: "celery" },
    });
  });

  it("keeps an existing parent, expires, time limits, group and priority; defaults to 180 s", () => {
    const orig = decodeCeleryMessage(
      encodeCeleryTask({ task: "t", args: [1], parentId: "p0", rootId: "r0", expires: NOW + 3_600_000, hardTimeLimitMs: 9_000, group: "g", priority: 7, queue: "emails", retries: 2, now: NOW }).raw,
    );
    const req = decodeCeleryMessage(encodeCeleryRetry(orig, { now: NOW, args: [2] }).raw);
    expect(req).toMatchObject({
      retries: 3,
      eta: NOW + DEFAULT_RETRY_DELAY_MS,
      parentId: "p0",
      rootId: "r0",
      expires: NOW + 3_600_000,
      hardTimeLimitMs: 9_000,
      group: "g",
      priority: 7,
      args: [2],
      deliveryInfo: { exchange: "", routingKey: "emails" },
    });
  });

  it("has the same header keys as a retry captured from a real Celery worker", () => {
    const orig = decodeCeleryMessage(onlyEntry("v2-basic").raw);
    const ours = envelopeOf(encodeCeleryRetry(orig, { now: NOW }).raw);
    // Captured in docs (celery-protocol.md §4): the retry re-publish of tasks.flaky.
    const captured = ["lang", "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit", "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result"];
    expect(Object.keys(ours.headers)).toEqual(captured);
  });
});

describe("pyRepr for argsrepr/kwargsrepr", () => {
  it("formats like Python's repr", () => {
    expect(pyReprArgs([2, 3])).toBe("(2, 3)");
    expect(pyReprArgs([2])).toBe("(2,)");
    expect(pyReprArgs([])).toBe("()");
    expect(pyReprArgs([null, true, false, "it's", 'a"b', "x\ny"])).toBe(`(None, True, False, 'it\\'s', 'a"b', 'x\ny')`);
    expect(pyReprArgs([{ a: { b: [1] } }])).toBe("({'a': {'b': [...]}},)");
    expect(pyReprKwargs({ a: 1, b: [2] })).toBe("{'a': 1, 'b': [2]}");
    expect(pyReprKwargs({})).toBe("{}");
    expect(pyReprArgs(["x".repeat(2000)]).length).toBe(1027);
  });

  it("agrees with Celery's argsrepr/kwargsrepr on the captured fixtures", () => {
    for (const name of ["v2-basic", "v2-send-task-kwargs", "v2-unicode-nested"]) {
      const req = decodeCeleryMessage(onlyEntry(name).raw);
      expect(pyReprArgs(req.args), name).toBe(req.argsrepr);
      expect(pyReprKwargs(req.kwargs), name).toBe(req.kwargsrepr);
    }
  });
});
