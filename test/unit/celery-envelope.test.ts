import { describe, expect, it } from "vitest";
import { MessageError } from "../../src/errors.ts";
import { toTaskMessage } from "../../src/celery/codec.ts";
import { celeryMessageSummary, decodeCeleryMessage, encodeCeleryRetry, peekCeleryIdentity, queueFromListKey } from "../../src/protocol/celery/index.ts";
import { decodeMessage, encodeMessage } from "../../src/protocol/message.ts";
import { fixtureNames, messageFixture, onlyEntry } from "../fixtures/celery/load.ts";

const tid = (n: number) => `6f25c36f-62bf-4767-a722-${String(n).padStart(12, "0")}`;

function reject(raw: string): string {
  try {
    decodeCeleryMessage(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(MessageError);
    const msg = (err as Error).message;
    expect(msg).not.toContain("\n");
    return msg;
  }
  throw new Error("expected the message to be rejected");
}

/** A real v2 envelope with parts replaced, for the negative cases (deliberately loose typing: tests break it). */
/* eslint-disable @typescript-eslint/no-explicit-any */
function mutate(fn: (env: Record<string, any>) => void): string {
  const env = JSON.parse(onlyEntry("v2-basic").raw) as Record<string, any>;
  fn(env);
  return JSON.stringify(env);
}
/* eslint-enable @typescript-eslint/no-explicit-any */

const b64 = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64");

describe("decodeCeleryMessage: protocol 2 fixtures from Celery 5.2.6", () => {
  it("decodes add.apply_async((2, 3))", () => {
    const { raw, key } = onlyEntry("v2-basic");
    expect(key).toBe("celery");
    const req = decodeCeleryMessage(raw);
    expect(req).toMatchObject({
      protocolVersion: 2,
      id: "6f25c36f-62bf-4767-a722-50ed79640001",
      task: "tasks.add",
      args: [2, 3],
      kwargs: {},
      eta: undefined,
      expires: undefined,
      retries: 0,
      parentId: undefined,
      group: undefined,
      ignoreResult: false,
      priority: 0,
      deliveryInfo: { exchange: "", routingKey: "celery" },
      redelivered: false,
      lang: "py",
      argsrepr: "(2, 3)",
      kwargsrepr: "{}",
      hasWorkflow: false,
      hardTimeLimitMs: undefined,
      softTimeLimitMs: undefined,
    });
    expect(req.rootId).toBe(req.id);
    expect(req.correlationId).toBe(req.id);
    expect(req.deliveryTag).toMatch(/^[0-9a-f-]{36}$/);
    expect(req.origin).toMatch(/^gen\d+@/);
    expect(req.embed).toEqual({ callbacks: null, errbacks: null, chain: null, chord: null });
  });

  it("decodes every captured JSON message without error", () => {
    for (const name of fixtureNames("messages")) {
      if (name === "v2-pickle" || name === "v2-yaml") continue;
      for (const entry of messageFixture(name).entries) {
        const req = decodeCeleryMessage(entry.raw);
        expect(req.task, name).toMatch(/^tasks\./);
        expect(queueFromListKey(entry.key)).toBe(req.deliveryInfo.routingKey);
      }
    }
  });

  it("keeps unicode and nested JSON intact in args and kwargs", () => {
    const req = decodeCeleryMessage(onlyEntry("v2-unicode-nested").raw);
    expect(req.args).toEqual([
      "héllo wörld ✓ 日本語 🎉",
      { nested: { list: [1, 2.5, null, true, false], empty: {} } },
      [],
      -7,
    ]);
    expect(req.kwargs).toEqual({
      user: { name: "Zoë", tags: ["a", "b"] },
      limit: 10,
      ratio: 0.125,
      flag: null,
      quote: 'she said "hi"\n\ttab',
    });
  });

  it("turns countdown into an absolute eta (epoch ms)", () => {
    const { raw, sentAtMs } = onlyEntry("v2-countdown");
    const req = decodeCeleryMessage(raw);
    expect(req.eta).toBeDefined();
    expect(req.eta! - sentAtMs).toBeGreaterThan(29_000);
    expect(req.eta! - sentAtMs).toBeLessThan(31_000);
  });

  it("reads an explicit eta, in UTC and with an offset", () => {
    expect(decodeCeleryMessage(onlyEntry("v2-eta").raw).eta).toBe(Date.UTC(2030, 0, 2, 3, 4, 5, 678));
    // 05:04:05+02:00 is 03:04:05Z.
    expect(decodeCeleryMessage(onlyEntry("v2-eta-offset").raw).eta).toBe(Date.UTC(2030, 0, 2, 3, 4, 5));
  });

  it("reads expires given as seconds and as a datetime", () => {
    const { raw, sentAtMs } = onlyEntry("v2-expires-seconds");
    const exp = decodeCeleryMessage(raw).expires!;
    expect(exp - sentAtMs).toBeGreaterThan(59_000);
    expect(exp - sentAtMs).toBeLessThan(61_000);
    expect(decodeCeleryMessage(onlyEntry("v2-expires-datetime").raw).expires).toBe(Date.UTC(2031, 5, 7, 8, 9, 10));
  });

  it("reads priorities 0..9 and finds them in kombu's four lists", () => {
    const expectedKey = (p: number) => (p < 3 ? "celery" : `celery\x06\x16${p < 6 ? 3 : p < 9 ? 6 : 9}`);
    for (let p = 0; p <= 9; p++) {
      const { raw, key } = onlyEntry(`v2-priority-${p}`);
      expect(key, `priority ${p}`).toBe(expectedKey(p));
      expect(decodeCeleryMessage(raw).priority).toBe(p);
    }
  });

  it("reads the routing of a message sent to another queue", () => {
    const { raw, key } = onlyEntry("v2-queue-emails");
    expect(key).toBe("emails");
    expect(decodeCeleryMessage(raw).deliveryInfo).toEqual({ exchange: "", routingKey: "emails" });
  });

  it("reads timelimit as [hard, soft] seconds", () => {
    const req = decodeCeleryMessage(onlyEntry("v2-timelimit").raw);
    expect(req.hardTimeLimitMs).toBe(10_000);
    expect(req.softTimeLimitMs).toBe(5_000);
  });

  it("reads ignore_result, shadow, retries and custom headers", () => {
    expect(decodeCeleryMessage(onlyEntry("v2-ignore-result").raw).ignoreResult).toBe(true);
    expect(decodeCeleryMessage(onlyEntry("v2-shadow").raw).shadow).toBe("add-renamed");
    const custom = decodeCeleryMessage(onlyEntry("v2-send-task-kwargs").raw);
    expect(custom.retries).toBe(2);
    expect(custom.args).toEqual([]);
    expect(custom.kwargs).toEqual({ a: 1, b: [2] });
    expect(custom.headers["x-custom"]).toBe("yes");
  });

  it("flags link/link_error and chain as workflow without failing", () => {
    const link = decodeCeleryMessage(onlyEntry("v2-link").raw);
    expect(link.hasWorkflow).toBe(true);
    expect(link.embed.callbacks).toHaveLength(1);
    expect(link.embed.errbacks).toHaveLength(1);
    const chain = decodeCeleryMessage(onlyEntry("v2-chain").raw);
    expect(chain.hasWorkflow).toBe(true);
    expect(chain.embed.chain).toHaveLength(2);
  });

  it("reads group membership", () => {
    const entries = messageFixture("v2-group").entries.map((e) => decodeCeleryMessage(e.raw));
    expect(entries).toHaveLength(2);
    expect(entries[0]!.group).toBeDefined();
    expect(entries[0]!.group).toBe(entries[1]!.group);
  });

  it("accepts a Buffer as well as a string", () => {
    expect(decodeCeleryMessage(Buffer.from(onlyEntry("v2-basic").raw)).task).toBe("tasks.add");
  });

  it("sees kombu's redelivered flags", () => {
    const raw = mutate((env) => {
      env.headers.redelivered = true;
      env.properties.delivery_info.redelivered = true;
    });
    expect(decodeCeleryMessage(raw).redelivered).toBe(true);
  });

  it("accepts a body without body_encoding as plain JSON text (a Celery worker does too)", () => {
    const raw = mutate((env) => {
      env.body = JSON.stringify([[1], { k: "v" }, {}]);
      delete env.properties.body_encoding;
    });
    expect(decodeCeleryMessage(raw)).toMatchObject({ args: [1], kwargs: { k: "v" } });
  });

  it("tolerates a two-element body [args, kwargs]", () => {
    const raw = mutate((env) => (env.body = b64([[7], {}])));
    expect(decodeCeleryMessage(raw)).toMatchObject({ args: [7], hasWorkflow: false });
  });

  it("keeps a reason short when it quotes a long value (found by decoders-fuzz)", () => {
    expect(reject(mutate((env) => (env.headers.eta = "x".repeat(100_000))))).toMatch(/^celery message: eta "x{70,}… \(100002 characters\) is not an ISO-8601 datetime$/);
    expect(reject(mutate((env) => (env["content-type"] = "y".repeat(100_000))))).toMatch(/^celery message: content-type "y{70,}… \(100002 characters\) is not accepted;/);
  });

  it("refuses an id or task name longer than a qworker worker keeps (found by decoders-fuzz)", () => {
    // Accepted here, they were refused by the worker as its own message, and dead-lettered without the
    // FAILURE result a waiting Celery client needs; refused here, the consumer stores one.
    expect(reject(mutate((env) => (env.headers.id = "x".repeat(201))))).toBe("celery message: headers.id: id is longer than 200 characters, the most a qworker worker keeps");
    expect(reject(mutate((env) => (env.headers.task = "t".repeat(201))))).toMatch(/^celery message: headers.task: task name is longer than 200 characters/);
    expect(decodeCeleryMessage(mutate((env) => (env.headers.id = "x".repeat(200)))).id).toHaveLength(200);
  });

  it("reads a time limit too large for milliseconds as the longest there is (found by decoders-fuzz)", () => {
    // 1e306 s overflowed to Infinity ms, which the worker's message wrote as null and dead-lettered.
    const req = decodeCeleryMessage(mutate((env) => (env.headers.timelimit = [1e306, 1e307])));
    expect(req).toMatchObject({ hardTimeLimitMs: Number.MAX_SAFE_INTEGER, softTimeLimitMs: Number.MAX_SAFE_INTEGER });
    expect(decodeMessage(encodeMessage(toTaskMessage(req, "celery", 1)))).toMatchObject({ timeLimitMs: Number.MAX_SAFE_INTEGER });
    expect(() => encodeCeleryRetry(req)).not.toThrow();
  });

  it("reads a naive eta as UTC by default, or local time when asked", () => {
    const raw = mutate((env) => (env.headers.eta = "2030-01-02T03:04:05.5"));
    expect(decodeCeleryMessage(raw).eta).toBe(Date.UTC(2030, 0, 2, 3, 4, 5, 500));
    expect(decodeCeleryMessage(raw, { naiveTimezone: "local" }).eta).toBe(new Date(2030, 0, 2, 3, 4, 5, 500).getTime());
  });
});

describe("decodeCeleryMessage: protocol 1 fixtures", () => {
  it("decodes a v1 message (empty headers, everything in the body)", () => {
    const { raw } = onlyEntry("v1-basic");
    expect(JSON.parse(raw).headers).toEqual({});
    expect(decodeCeleryMessage(raw)).toMatchObject({
      protocolVersion: 1,
      id: tid(201),
      task: "tasks.add",
      args: [2, 3],
      kwargs: {},
      retries: 0,
      rootId: undefined,
      hasWorkflow: false,
      headers: {},
    });
  });

  it("decodes v1 kwargs, eta and expires, and priority", () => {
    expect(decodeCeleryMessage(onlyEntry("v1-kwargs").raw)).toMatchObject({ args: ["x"], kwargs: { k: "v", n: [1, { z: null }] } });
    const { raw, sentAtMs } = onlyEntry("v1-eta-expires");
    const req = decodeCeleryMessage(raw);
    expect(req.eta! - sentAtMs).toBeGreaterThan(29_000);
    expect(req.expires! - sentAtMs).toBeGreaterThan(89_000);
    expect(req.expires! - req.eta!).toBe(60_000);
    const pri = onlyEntry("v1-priority-6");
    expect(pri.key).toBe("celery\x06\x166");
    expect(decodeCeleryMessage(pri.raw).priority).toBe(6);
  });
});

describe("decodeCeleryMessage: rejections", () => {
  it("refuses pickle and yaml bodies, naming the serializer", () => {
    expect(reject(onlyEntry("v2-pickle").raw)).toMatch(/application\/x-python-serialize.*pickle.*not accepted/);
    expect(reject(onlyEntry("v2-yaml").raw)).toMatch(/application\/x-yaml.*yaml.*not accepted/);
    expect(reject(mutate((env) => (env["content-type"] = "application/x-msgpack")))).toMatch(/msgpack/);
  });

  it("refuses broken envelopes with a precise reason", () => {
    expect(reject("not json")).toMatch(/envelope is not valid JSON/);
    expect(reject("[1,2]")).toMatch(/envelope is not a JSON object/);
    expect(reject(mutate((env) => delete env.body))).toMatch(/body/);
    expect(reject(mutate((env) => delete env.properties))).toMatch(/properties/);
    expect(reject(mutate((env) => (env.body = "@@not base64@@")))).toMatch(/not valid base64/);
    expect(reject(mutate((env) => (env.body = Buffer.from([0xff, 0xfe, 0x00]).toString("base64"))))).toMatch(/UTF-8/);
    expect(reject(mutate((env) => (env.body = b64("{not json"))))).toMatch(/body is not valid JSON/);
    // A reason quoting a body with line breaks stays one line (reject checks): found by decoders-fuzz.
    expect(reject(mutate((env) => (env.body = b64("Z\n\u2028x"))))).toMatch(/body is not valid JSON \(.*Z\\n\\u2028x/);
  });

  it("refuses nesting deeper than the consumer can write back (found by decoders-fuzz)", () => {
    // It re-encodes args as a qworker message, and headers on a retry: JSON.stringify overflowed the stack,
    // and the failure took the whole claimed batch with it, again at every redelivery.
    const nested = (levels: number) => JSON.parse("[".repeat(levels) + "]".repeat(levels)) as unknown;
    const body = (args: string) => b64(`[${args}, {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]`);
    const deepArgs = "[" + "[".repeat(20_000) + "]".repeat(20_000) + "]";
    expect(reject(mutate((env) => (env.body = body(deepArgs))))).toBe("celery message: body element 0 nests deeper than 512 levels, more than a worker can write back");
    expect(reject(mutate((env) => (env.headers.extra = nested(600))))).toMatch(/^celery message: envelope "headers" nests deeper than 512 levels/);
    expect(decodeCeleryMessage(mutate((env) => (env.body = body(JSON.stringify([nested(500)])))))).toMatchObject({ task: "tasks.add" });
    expect(reject(mutate((env) => (env.properties.body_encoding = "rot13")))).toMatch(/body_encoding "rot13"/);
    expect(reject(mutate((env) => (env["content-encoding"] = "latin-1")))).toMatch(/content-encoding/);
  });

  it("refuses a v2 body of the wrong shape", () => {
    expect(reject(mutate((env) => (env.body = b64([[1]]))))).toMatch(/\[args, kwargs, embed\], got 1 element/);
    expect(reject(mutate((env) => (env.body = b64(["x", {}, {}]))))).toMatch(/args \(element 0\) must be a list/);
    expect(reject(mutate((env) => (env.body = b64([[], [], {}]))))).toMatch(/kwargs \(element 1\) must be an object/);
    expect(reject(mutate((env) => (env.body = b64([[], {}, { chain: 5 }]))))).toMatch(/body\[2\] \(embed\)\.chain/);
    expect(reject(mutate((env) => (env.body = b64(JSON.stringify("just a string")))))).toMatch(/must be a JSON list/);
  });

  it("refuses bad header values", () => {
    expect(reject(mutate((env) => (env.headers.id = "")))).toMatch(/headers\.id/);
    expect(reject(mutate((env) => (env.headers.retries = -1)))).toMatch(/headers\.retries/);
    expect(reject(mutate((env) => (env.headers.eta = "tomorrow")))).toMatch(/eta "tomorrow" is not an ISO-8601 datetime/);
    expect(reject(mutate((env) => (env.headers.expires = "2030-02-30T00:00:00")))).toMatch(/expires/);
    expect(reject(mutate((env) => (env.headers.timelimit = [1])))).toMatch(/headers\.timelimit/);
  });

  it("refuses a message that is neither v2 nor v1", () => {
    const raw = mutate((env) => {
      env.headers = {};
      env.body = b64({ args: [], kwargs: {} });
    });
    expect(reject(raw)).toMatch(/no task name/);
    const list = mutate((env) => {
      env.headers = {};
    });
    expect(reject(list)).toMatch(/headers\.task is missing/);
  });

  it("refuses v1 bodies with non-mapping kwargs", () => {
    const raw = mutate((env) => {
      env.headers = {};
      env.body = b64({ task: "tasks.add", id: "x", args: [], kwargs: [1] });
    });
    expect(reject(raw)).toMatch(/body\.kwargs/);
  });
});

describe("peekCeleryIdentity", () => {
  it("finds id and task even when the body cannot be decoded", () => {
    expect(peekCeleryIdentity(onlyEntry("v2-pickle").raw)).toEqual({ id: tid(14), task: "tasks.add" });
    expect(peekCeleryIdentity("garbage")).toEqual({});
  });
});

describe("celeryMessageSummary", () => {
  const summary = (raw: string) => celeryMessageSummary(JSON.parse(raw));

  it("reads task, id and retries from v2 headers, even when the body is not JSON", () => {
    expect(summary(onlyEntry("v2-basic").raw)).toEqual({ id: "6f25c36f-62bf-4767-a722-50ed79640001", task: "tasks.add", retries: 0 });
    expect(summary(onlyEntry("v2-pickle").raw)).toEqual({ id: tid(14), task: "tasks.add", retries: 0 });
    expect(summary(mutate((env) => (env.headers.retries = 3)))).toMatchObject({ retries: 3 });
  });

  it("reads a protocol 1 body, base64 or not", () => {
    expect(summary(onlyEntry("v1-basic").raw)).toEqual({ id: tid(201), task: "tasks.add", retries: 0 });
    const plain = { body: JSON.stringify({ id: "p1", task: "tasks.plain", retries: 2 }), "content-type": "application/json", headers: {}, properties: {} };
    expect(celeryMessageSummary(plain)).toEqual({ id: "p1", task: "tasks.plain", retries: 2 });
  });

  it("never throws on a malformed envelope; leaves out what it cannot read", () => {
    for (const bad of [null, 42, "x", [], {}, { headers: "x" }, { body: 7 }, { headers: null, body: "not json" }, { body: b64("{"), properties: { body_encoding: "base64" } }, { body: "{}", properties: "x" }]) {
      expect(celeryMessageSummary(bad)).toEqual({});
    }
    expect(celeryMessageSummary({ headers: { task: "", id: 5, retries: -1 }, body: "[]" })).toEqual({});
    expect(celeryMessageSummary({ headers: { task: "t.x" }, body: b64([[], {}, {}]), properties: { body_encoding: "base64" } })).toEqual({ task: "t.x" });
  });
});
