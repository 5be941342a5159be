/**
 * Property tests of every decoder that reads data back from the broker: qworker's task message, the
 * Celery envelope and body (protocol 1 and 2, base64 or not), Celery and qworker results, task events,
 * worker records, the never-throwing peeks `qworker dead`/`inspect`/`qworker result` use, Celery revoke
 * broadcasts and Celery's datetimes.
 *
 * Valid messages are generated, then mutated (fields dropped, renamed to "__proto__"/"constructor",
 * retyped deep inside, huge numbers, lone surrogates, very long strings, nesting far deeper than
 * JSON.stringify can write back, truncated JSON, invalid base64, binary garbage). The promise under test:
 * each decoder returns a valid value that the worker can write back (retry, result, re-park) or fails with
 * its documented failure, a one-line MessageError (or null/undefined/{} for the peeks); never a raw
 * TypeError/RangeError, never a stall, never an object whose prototype was swapped.
 *
 * fast-check drives it: fixed seed and run counts, so a failure replays exactly and the file stays fast
 * (about 2 s). QWORKER_FUZZ_SEED and QWORKER_FUZZ_RUNS (a multiplier) explore further by hand; a failure
 * is reported as generated, not shrunk: shrinking texts of 16,000 brackets takes longer than reading them.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeWorkerInfo } from "../../src/broker/worker-info.ts";
import { MessageError } from "../../src/errors.ts";
import { toTaskMessage } from "../../src/celery/codec.ts";
import { parseRevoke } from "../../src/celery/revoke.ts";
import { peekPayload } from "../../src/cli/inspect/format.ts";
import { workerRow } from "../../src/cli/inspect/views.ts";
import { decodeEvent, taskEventSchema } from "../../src/events/format.ts";
import {
  celeryMessageSummary,
  celeryTaskIdOf,
  decodeCeleryMessage,
  decodeResultMeta,
  encodeCeleryRetry,
  encodeCeleryTask,
  parseIsoDateTime,
  peekCeleryIdentity,
} from "../../src/protocol/celery/index.ts";
import { decodeMessage, encodeMessage, taskMessageSchema, type TaskMessage } from "../../src/protocol/message.ts";
import { decodeResult, encodeResult } from "../../src/results/record.ts";
import { fromLocation } from "../../src/results/status.ts";
import { fixtureNames, messageFixture, resultFixture } from "../fixtures/celery/load.ts";

const SEED = Number(process.env.QWORKER_FUZZ_SEED ?? 20261127);
const SCALE = Number(process.env.QWORKER_FUZZ_RUNS ?? 1);
const run = <T>(arb: fc.Arbitrary<T>, check: (v: T) => void, numRuns = 150): void =>
  fc.assert(
    fc.property(arb, (v) => {
      check(v);
    }),
    { seed: SEED, numRuns: Math.max(1, Math.round(numRuns * SCALE)), endOnFailure: true },
  );

// -------------------------------------------------------------------------------------------------
// Poison: values spliced into valid messages. Those JSON.stringify cannot produce (nesting deeper than
// V8's stack, 1e400, own "__proto__" keys) are placeholders replaced in the text.
// -------------------------------------------------------------------------------------------------

const RAW_POISON: Record<string, string> = {
  "@@deep-array@@": "[".repeat(8_000) + "]".repeat(8_000),
  "@@deep-object@@": '{"a":'.repeat(8_000) + "1" + "}".repeat(8_000),
  "@@deep-mixed@@": '[{"k":'.repeat(3_000) + "null" + "}]".repeat(3_000),
  "@@huge@@": "1e400",
  "@@big@@": "1e306",
  "@@-huge@@": "-1e400",
  "@@bignum@@": "123456789012345678901234567890",
  "@@proto@@": '{"__proto__":{"polluted":1},"constructor":{"prototype":{"polluted":1}},"toString":"x"}',
  "@@-zero@@": "-0",
  "@@tiny@@": "5e-324",
};

const nasty: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...Object.keys(RAW_POISON)),
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    2 ** 53 + 2,
    -(2 ** 31),
    Number.MAX_VALUE,
    "",
    "NaN",
    "Infinity",
    "-0",
    "\ud800",
    "\udfff\ud800x",
    "a\u0000b",
    "__proto__",
    "constructor",
    "x".repeat(100_000),
    [],
    {},
    [null],
    { exc_type: 5 },
  ),
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.double(),
  fc.tuple(fc.double(), fc.double()),
);

const nastyKey = fc.constantFrom("__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "", "\ud800", "valueOf");

type Op = { pick: number; kind: "drop" | "rename" | "replace"; value: unknown; key: string };
const ops = fc.array(
  fc.record({ pick: fc.nat(), kind: fc.constantFrom("drop" as const, "rename" as const, "replace" as const), value: nasty, key: nastyKey }),
  { minLength: 1, maxLength: 3 },
);

/** Every place in a JSON tree a value sits: [container, key]. */
function slots(root: unknown): [Record<string, unknown> | unknown[], string | number][] {
  const out: [Record<string, unknown> | unknown[], string | number][] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0 && out.length < 500) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null) continue;
    const holder = v as Record<string, unknown> | unknown[];
    for (const [k, c] of Object.entries(holder)) {
      out.push([holder, Array.isArray(holder) ? Number(k) : k]);
      stack.push(c);
    }
  }
  return out;
}

/** Apply the mutations to a copy of a JSON value; renamed keys are defined as own properties, as JSON.parse would. */
function mutate(value: unknown, list: Op[]): unknown {
  const root: Record<string, unknown> = { root: structuredClone(value) as unknown };
  for (const op of list) {
    const all = slots(root);
    const [holder, key] = all[op.pick % all.length] ?? [root, "root"];
    if (Array.isArray(holder)) {
      if (op.kind === "drop") holder.splice(key as number, 1);
      else holder[key as number] = op.value;
    } else if (op.kind === "drop") delete holder[key];
    else if (op.kind === "replace") holder[key] = op.value;
    else {
      const v = holder[key];
      delete holder[key];
      Object.defineProperty(holder, op.key, { value: v, enumerable: true, writable: true, configurable: true });
    }
  }
  return root.root;
}

/** The JSON text of a mutated value, placeholders replaced by their raw text. */
function toText(value: unknown): string {
  let text = JSON.stringify(value) ?? "null";
  for (const [token, raw] of Object.entries(RAW_POISON)) text = text.split(JSON.stringify(token)).join(raw);
  return text;
}

/** Damage to the text itself: cut short, bytes inserted, or left alone. */
const textDamage = fc.oneof(
  fc.constant((t: string) => t),
  fc.constant((t: string) => t),
  fc.nat().map((n) => (t: string) => t.slice(0, n % (t.length + 1))),
  fc.tuple(fc.nat(), fc.string({ unit: "binary", minLength: 1, maxLength: 4 })).map(([n, s]) => (t: string) => {
    const at = n % (t.length + 1);
    return t.slice(0, at) + s + t.slice(at);
  }),
);

// -------------------------------------------------------------------------------------------------
// Checks shared by every decoder
// -------------------------------------------------------------------------------------------------

const PROTO_KEYS = Object.getOwnPropertyNames(Object.prototype).sort();

/** No decoder may add to Object.prototype or hand back an object whose prototype was swapped. */
function expectUnpolluted(value: unknown): void {
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(PROTO_KEYS);
  expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (typeof v !== "object" || v === null || d > 50) continue;
    if (v instanceof Error) continue;
    const proto = Object.getPrototypeOf(v) as unknown;
    expect([Object.prototype, Array.prototype, null]).toContain(proto);
    for (const c of Object.values(v)) stack.push([c, d + 1]);
  }
}

/** Run a decoder: it returns, or throws a one-line MessageError. Returns the value, or undefined when it threw. */
function decodeOrMessageError<T>(decode: () => T): T | undefined {
  const started = performance.now();
  try {
    const value = decode();
    expectUnpolluted(value);
    return value;
  } catch (err) {
    if (!(err instanceof MessageError)) throw new Error(`expected a MessageError, got ${String(err)}`, { cause: err });
    expect(err.message).not.toMatch(/[\n\r\u2028\u2029]/);
    expect(err.message.length, err.message.slice(0, 200)).toBeLessThanOrEqual(1100);
    return undefined;
  } finally {
    // A decoder must not stall on any input (a backtracking regex, a quadratic walk).
    expect(performance.now() - started).toBeLessThan(1000);
  }
}

/** For the peeks that promise never to throw. */
function neverThrows<T>(peek: () => T): T {
  const value = peek();
  expectUnpolluted(value);
  return value;
}

// -------------------------------------------------------------------------------------------------
// Generators of valid messages
// -------------------------------------------------------------------------------------------------

const json = fc.jsonValue({ maxDepth: 3 });
const shortText = fc.string({ minLength: 1, maxLength: 30 });

const nativeMessage: fc.Arbitrary<TaskMessage> = fc
  .record(
    {
      v: fc.constant(1 as const),
      id: shortText,
      task: shortText,
      args: fc.array(json, { maxLength: 4 }),
      kwargs: fc.dictionary(fc.string({ maxLength: 8 }), json, { maxKeys: 4 }),
      queue: shortText,
      priority: fc.integer({ min: 0, max: 9 }),
      retries: fc.nat(50),
      sentAt: fc.integer({ min: 0, max: 4e12 }),
      eta: fc.integer({ min: 0, max: 4e12 }),
      expires: fc.integer({ min: 0, max: 4e12 }),
      timeLimitMs: fc.integer({ min: 1, max: 1e9 }),
      maxRetries: fc.nat(10),
      uniqueKey: fc.string({ maxLength: 10 }),
      ignoreResult: fc.boolean(),
      origin: fc.string({ maxLength: 10 }),
    },
    { requiredKeys: ["v", "id", "task", "args", "kwargs", "queue", "priority", "retries", "sentAt"] },
  )
  .map((m) => taskMessageSchema.parse(m));

const celeryTask = fc.record({
  task: shortText,
  id: fc.uuid(),
  args: fc.array(json, { maxLength: 4 }),
  kwargs: fc.dictionary(fc.string({ maxLength: 8 }), json, { maxKeys: 4 }),
  eta: fc.option(fc.integer({ min: 0, max: 4e12 }), { nil: undefined }),
  expires: fc.option(fc.integer({ min: 0, max: 4e12 }), { nil: undefined }),
  priority: fc.integer({ min: 0, max: 9 }),
  retries: fc.nat(10),
  hardTimeLimitMs: fc.option(fc.integer({ min: 1, max: 1e8 }), { nil: undefined }),
});

/** A Celery envelope as qworker's Celery client writes it (Celery's own apply_async layout), or a captured fixture. */
const celeryEnvelope: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  celeryTask.map((o) => JSON.parse(encodeCeleryTask({ ...o, now: 1_795_000_000_000 }).raw) as Record<string, unknown>),
  fc.constantFrom(...fixtureNames("messages").flatMap((n) => messageFixture(n).entries.map((e) => JSON.parse(e.raw) as Record<string, unknown>))),
);

/** The envelope's body, decoded from base64 so it can be mutated too, and a way to put it back. */
function withBody(env: Record<string, unknown>, fn: (body: unknown) => unknown): Record<string, unknown> {
  const props = env["properties"] as Record<string, unknown>;
  const b64 = props["body_encoding"] === "base64";
  const text = b64 ? Buffer.from(String(env["body"]), "base64").toString("utf8") : String(env["body"]);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return env; // a pickle or yaml fixture: left as it is
  }
  const next = toText(fn(body));
  return { ...env, body: b64 ? Buffer.from(next, "utf8").toString("base64") : next };
}

const HEADER_FIELDS = ["id", "task", "eta", "expires", "group", "group_index", "retries", "timelimit", "root_id", "parent_id", "shadow", "origin", "lang", "argsrepr", "kwargsrepr", "ignore_result", "redelivered", "taskset", "utc"];
const PROPERTY_FIELDS = ["body_encoding", "delivery_tag", "correlation_id", "reply_to", "priority", "delivery_info"];

/** One field the decoder reads given a poisoned value: a header (timelimit gets a poisoned pair), a property, a body element. */
const retypedCelery: fc.Arbitrary<string> = fc
  .tuple(celeryEnvelope, fc.constantFrom(...HEADER_FIELDS, ...PROPERTY_FIELDS, "body[0]", "body[1]", "body[2]"), nasty, nasty)
  .map(([env, field, v, v2]) => {
    if (field.startsWith("body[")) {
      const at = Number(field[5]);
      return toText(withBody(env, (b) => (Array.isArray(b) ? b.map((x, i) => (i === at ? v : x)) : { ...(b as object), [["args", "kwargs", "callbacks"][at]!]: v })));
    }
    if (PROPERTY_FIELDS.includes(field)) return toText({ ...env, properties: { ...(env["properties"] as object), [field]: v } });
    // Into the headers, and for protocol 1 into the body too (where the fields are).
    const value = field === "timelimit" ? [v, v2] : v;
    const withHeader = { ...env, headers: { ...(env["headers"] as object), [field]: value } };
    return toText(withBody(withHeader, (b) => (Array.isArray(b) ? b : { ...(b as object), [field]: value })));
  });

/** The numbers the decoder reads (seconds, counts, priority) at their edges: huge, tiny, negative, fractional. */
const edgeNumber = fc.oneof(fc.double(), fc.constantFrom(1e306, Number.MAX_VALUE, 5e-324, -1, 0.5, 2 ** 53 + 2, 2 ** 31, "@@huge@@", "@@bignum@@"));
const numbersCelery: fc.Arbitrary<string> = fc
  .tuple(celeryEnvelope, fc.constantFrom("timelimit", "retries", "group_index", "priority"), edgeNumber, edgeNumber)
  .map(([env, field, n, n2]) =>
    field === "priority"
      ? toText({ ...env, properties: { ...(env["properties"] as object), priority: n } })
      : toText({ ...env, headers: { ...(env["headers"] as object), task: "tasks.add", [field]: field === "timelimit" ? [n, n2] : n } }),
  );

/** The text fields at their edges: long (a worker keeps ids and names up to 200 characters), empty, lone surrogates, line breaks. */
const edgeText = fc.oneof(fc.string({ unit: "binary", maxLength: 8 }), fc.constantFrom("x".repeat(201), "x".repeat(100_000), "", "\ud800", "a\nb", "__proto__"));
const textCelery: fc.Arbitrary<string> = fc
  .tuple(celeryEnvelope, fc.constantFrom("id", "task", "root_id", "parent_id", "group", "shadow", "origin", "eta", "expires"), edgeText)
  .map(([env, field, text]) => {
    const headers = env["headers"] as Record<string, unknown>;
    // A protocol 1 fixture (empty headers) becomes a hybrid one, as Celery also accepts.
    return toText({ ...env, headers: { ...headers, task: headers["task"] ?? "tasks.add", [field]: text } });
  });

/** A poisoned raw Celery list entry: envelope, body or text mutated, invalid base64, or bytes at random. */
const poisonedCelery: fc.Arbitrary<string | Buffer> = fc.oneof(
  retypedCelery,
  retypedCelery,
  fc.tuple(celeryEnvelope, ops, textDamage).map(([env, o, dmg]) => dmg(toText(mutate(env, o)))),
  fc.tuple(celeryEnvelope, ops).map(([env, o]) => toText(withBody(env, (b) => mutate(b, o)))),
  fc.tuple(celeryEnvelope, textDamage).map(([env, dmg]) =>
    toText({ ...env, body: dmg(String(env["body"])), properties: { ...(env["properties"] as object), body_encoding: "base64" } }),
  ),
  fc.tuple(celeryEnvelope, fc.uint8Array({ maxLength: 64 })).map(([env, bytes]) => toText({ ...env, body: Buffer.from(bytes).toString("base64") })),
  fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
  celeryEnvelope.map((env) => Buffer.concat([Buffer.from(toText(env)), Buffer.from([0xff, 0xfe])])),
);

// -------------------------------------------------------------------------------------------------

describe("decoders of broker data, fuzzed", () => {
  it("qworker task message: a valid message, or a one-line MessageError; what it accepts re-encodes", () => {
    const retyped = fc.tuple(nativeMessage, fc.constantFrom(...Object.keys(taskMessageSchema.shape)), nasty).map(([m, k, v]) => toText({ ...m, [k]: v }));
    const poisoned = fc.oneof(
      retyped,
      retyped,
      fc.tuple(nativeMessage, ops, textDamage).map(([m, o, dmg]) => dmg(toText(mutate(m, o)))),
      nativeMessage.map((m) => toText(m)),
      fc.string({ unit: "binary", maxLength: 200 }),
    );
    run(poisoned, (raw) => {
      const msg = decodeOrMessageError(() => decodeMessage(raw));
      if (msg === undefined) return;
      expect(taskMessageSchema.safeParse(msg).success).toBe(true);
      // The worker writes it back on a retry: that must work, and read back the same.
      const retried = { ...msg, retries: msg.retries + 1 };
      // (Compared as JSON: -0 is written as 0, and a priority of -0 is one of 0.)
      expect(decodeMessage(encodeMessage(retried))).toEqual(JSON.parse(JSON.stringify(retried)));
    }, 300);
  });

  it("Celery message: a request the worker can run and write back, or a one-line MessageError", () => {
    run(fc.oneof(numbersCelery, textCelery, poisonedCelery), (raw) => {
      const req = decodeOrMessageError(() => decodeCeleryMessage(raw));
      if (req === undefined) return;
      for (const n of [req.eta, req.expires, req.hardTimeLimitMs, req.softTimeLimitMs, req.groupIndex, req.retries, req.priority]) {
        if (n !== undefined) expect(Number.isFinite(n)).toBe(true);
      }
      expect(typeof req.id).toBe("string");
      expect(typeof req.task).toBe("string");
      // What the consumer does next: hand the worker a qworker message, which the worker must accept (one
      // it refused was dead-lettered without the FAILURE a waiting Celery client needs), and on a retry
      // re-publish it.
      const encoded = encodeMessage(toTaskMessage(req, "celery", 1_795_000_000_000));
      expect(() => decodeMessage(encoded)).not.toThrow();
      encodeCeleryRetry(req, { now: 1_795_000_000_000 });
    }, 400);
  });

  it("the never-throwing Celery peeks (worker dead-letter path, qworker dead, inspect, revoke by lease id)", () => {
    run(poisonedCelery, (raw) => {
      const text = typeof raw === "string" ? raw : raw.toString("latin1");
      neverThrows(() => peekCeleryIdentity(raw));
      neverThrows(() => celeryTaskIdOf(text));
      neverThrows(() => peekPayload(text));
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return;
      }
      const summary = neverThrows(() => celeryMessageSummary(parsed));
      if (summary.retries !== undefined) expect(Number.isSafeInteger(summary.retries)).toBe(true);
    }, 200);
  });

  it("Celery result meta: a decoded result whose parts can be shown and re-serialized, or a one-line MessageError", () => {
    const stored = fc.constantFrom(...fixtureNames("results").map((n) => JSON.parse(resultFixture(n).raw) as unknown));
    const poisoned = fc.oneof(
      fc.tuple(stored, ops, textDamage).map(([r, o, dmg]) => dmg(toText(mutate(r, o)))),
      fc.uint8Array({ maxLength: 128 }).map((b) => Buffer.from(b)),
    );
    run(poisoned, (raw) => {
      const r = decodeOrMessageError(() => decodeResultMeta(raw));
      if (r === undefined) return;
      expect(typeof r.state).toBe("string");
      if (r.error) expect(typeof r.error.message).toBe("string");
      // `qworker celery result --json` and a Celery client print it.
      JSON.stringify(r.meta);
      JSON.stringify(r.result);
    }, 200);
  });

  it("qworker result record: a record, or a one-line MessageError", () => {
    const record = fc.record(
      {
        id: shortText,
        state: fc.constantFrom("PENDING", "STARTED", "SUCCESS", "FAILURE", "REVOKED", "EXPIRED", "RETRY", "RECEIVED"),
        task: shortText,
        result: json,
        error: fc.record({ type: shortText, message: fc.string(), stack: fc.string() }, { requiredKeys: ["type", "message"] }),
        retries: fc.nat(5),
        runtimeMs: fc.double({ min: 0, max: 1e6, noNaN: true }),
        finishedAt: fc.integer({ min: 0, max: 4e12 }),
      },
      { requiredKeys: ["id", "state"] },
    );
    const poisoned = fc.oneof(
      fc.tuple(record, ops, textDamage).map(([r, o, dmg]) => dmg(toText(mutate(r, o)))),
      record.map((r) => encodeResult(r)),
      fc.constantFrom("null", "[]", "7", '"SUCCESS"', "{}"),
    );
    run(poisoned, (raw) => {
      const r = decodeOrMessageError(() => decodeResult(raw));
      if (r === undefined) return;
      expect(typeof r.id).toBe("string");
      expect(typeof r.state).toBe("string");
      if (r.error !== undefined) expect(typeof r.error.message).toBe("string");
      if (r.runtimeMs !== undefined) expect(Number.isFinite(r.runtimeMs)).toBe(true);
      JSON.stringify(r);
    }, 200);
  });

  it("task event: a valid event, or null", () => {
    const event = fc.record({
      v: fc.constant(1 as const),
      type: fc.constantFrom("task-received" as const, "task-succeeded" as const, "task-failed" as const, "task-poisoned" as const),
      id: shortText,
      ts: fc.integer({ min: 0, max: 4e12 }),
      worker: shortText,
      task: shortText,
      runtimeMs: fc.double({ min: 0, max: 1e6, noNaN: true }),
      error: fc.record({ type: shortText, message: fc.string() }),
    });
    const poisoned = fc.tuple(event, ops, textDamage).map(([e, o, dmg]) => dmg(toText(mutate(e, o))));
    run(poisoned, (raw) => {
      const e = neverThrows(() => decodeEvent(raw));
      if (e !== null) expect(taskEventSchema.safeParse(e).success).toBe(true);
    }, 200);
  });

  it("Celery revoke broadcast: ids as strings, or undefined", () => {
    const command = fc.record({
      method: fc.constantFrom("revoke", "ping"),
      arguments: fc.record({ task_id: fc.oneof(fc.uuid(), fc.array(fc.uuid(), { maxLength: 3 })), terminate: fc.boolean() }),
      destination: fc.constantFrom(null, [], ["celery@a"]),
    });
    const poisoned = fc.tuple(command, fc.boolean(), ops, textDamage).map(([c, b64, o, dmg]) => {
      const body = dmg(toText(mutate(c, o)));
      return toText({ body: b64 ? Buffer.from(body).toString("base64") : body, properties: { body_encoding: b64 ? "base64" : null } });
    });
    run(poisoned, (raw) => {
      const r = neverThrows(() => parseRevoke(raw));
      if (r) for (const id of r.ids) expect(typeof id).toBe("string");
    }, 200);
  });

  it("worker records (heartbeats read back by inspect and qworker result): a record, or undefined", () => {
    const record = fc.record({
      id: shortText,
      host: shortText,
      pid: fc.nat(),
      concurrency: fc.nat(64),
      pool: fc.constantFrom("async", "process"),
      queues: fc.array(shortText, { maxLength: 3 }),
      startedAt: fc.nat(),
      lastBeat: fc.nat(),
      processed: fc.nat(),
      succeeded: fc.nat(),
      failed: fc.nat(),
      active: fc.nat(),
      version: fc.constant("0.1.0"),
      progress: fc.dictionary(shortText, fc.record({ fraction: fc.double({ min: 0, max: 1, noNaN: true }), at: fc.nat() }), { maxKeys: 2 }),
      waiting: fc.array(shortText, { maxLength: 3 }),
    });
    run(fc.tuple(record, ops, textDamage, fc.option(fc.nat(), { nil: undefined })), ([r, o, dmg, beat]) => {
      const w = neverThrows(() => decodeWorkerInfo(dmg(toText(mutate(r, o))), beat));
      if (w === undefined) return;
      expect(Number.isFinite(w.lastBeat)).toBe(true);
      expect(Array.isArray(w.queues) && (w.waiting === undefined || Array.isArray(w.waiting))).toBe(true);
      workerRow(w, 0);
    }, 200);
  });

  it("an unfinished task's status from its stored payload (qworker result, TaskRef.status): never throws", () => {
    const payload = fc.oneof(
      fc.tuple(nativeMessage, ops, textDamage).map(([m, o, dmg]) => dmg(toText(mutate(m, o)))),
      poisonedCelery.map((p) => (typeof p === "string" ? p : p.toString("latin1"))),
    );
    const states = fc.constantFrom("ready" as const, "delayed" as const, "active" as const, "dead" as const);
    run(fc.tuple(payload, states), ([p, state]) => {
      const s = neverThrows(() => fromLocation({ id: "t", queue: "q", state, payload: p, deliveries: 1 }));
      expect(typeof s.state).toBe("string");
      JSON.stringify(s);
    }, 150);
  });

  it("Celery datetimes: a finite epoch, or undefined", () => {
    const near = fc
      .tuple(fc.integer({ min: -1e12, max: 3e14 }), fc.constantFrom("", "Z", "+00:00", "-23:59", "+99:99", "+0530"), textDamage)
      .map(([ms, tz, dmg]) => dmg(new Date(Math.max(-8.64e15, Math.min(8.64e15, ms))).toISOString().slice(0, -1) + tz));
    run(fc.oneof(near, fc.string({ unit: "binary", maxLength: 40 }), fc.constant("2026-01-01T00:00:00." + "1".repeat(50_000) + "x")), (text) => {
      const started = performance.now();
      const ms = parseIsoDateTime(text);
      expect(performance.now() - started).toBeLessThan(1000);
      if (ms !== undefined) expect(Number.isFinite(ms)).toBe(true);
    }, 300);
  });
});
