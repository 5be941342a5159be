import { describe, expect, it } from "vitest";
import { MessageError, NotRegisteredError, SoftTimeLimitExceeded } from "../../src/errors.ts";
import {
  buildResultMeta,
  CeleryTaskError,
  decodeResultMeta,
  failureMeta,
  formatNaiveUtc,
  notRegisteredMeta,
  pythonExceptionFor,
  retryMeta,
  revokedMeta,
  serializeResultMeta,
  startedMeta,
  successMeta,
  toCeleryException,
} from "../../src/protocol/celery/index.ts";
import { fixtureNames, resultFixture } from "../fixtures/celery/load.ts";

const ID = "6f25c36f-62bf-4767-a722-000000000001";
const NOW = Date.UTC(2026, 10, 25, 16, 25, 20, 394);

/** Celery's meta without the volatile date_done. */
function stable(raw: string): Record<string, unknown> {
  const m = JSON.parse(raw) as Record<string, unknown>;
  return { ...m, date_done: m["date_done"] === null ? null : "<date>" };
}

function named(name: string, message: string): Error {
  return Object.assign(new Error(message), { name });
}

describe("Celery's own result meta (fixtures from celery.backends.redis)", () => {
  it("stores with a TTL and publishes the identical text", () => {
    for (const name of fixtureNames("results")) {
      const f = resultFixture(name);
      expect(f.ttl, name).toBeGreaterThan(3500);
      expect(f.published, name).toBe(f.raw);
      expect(f.key).toBe(`celery-task-meta-${JSON.parse(f.raw).task_id}`);
    }
  });

  it("writes date_done as naive UTC with microseconds, and null for non-ready states", () => {
    expect(JSON.parse(resultFixture("success-int").raw).date_done).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
    expect(formatNaiveUtc(NOW)).toBe("2026-11-25T16:25:20.394000");
    expect(JSON.parse(resultFixture("started").raw).date_done).toBeNull();
    expect(JSON.parse(resultFixture("retry").raw).date_done).toBeNull();
  });

  it("decodes every fixture the way the Python client does", () => {
    for (const name of fixtureNames("results")) {
      const f = resultFixture(name);
      const r = decodeResultMeta(f.raw);
      expect(r.taskId, name).toBe(JSON.parse(f.raw).task_id);
      if (f.python_view.kind === "exception") {
        expect(r.error, name).toBeInstanceOf(CeleryTaskError);
        expect(r.error!.pythonClass, name).toBe(f.python_view.class);
        expect(r.error!.args.length, name).toBe(f.python_view.args.length);
        expect(r.result, name).toBeUndefined();
      } else {
        expect(r.error, name).toBeUndefined();
      }
    }
  });

  it("reads states, readiness, values and extra fields", () => {
    const ok = decodeResultMeta(resultFixture("success-int").raw);
    expect(ok).toMatchObject({ state: "SUCCESS", ready: true, result: 5, traceback: undefined });
    expect(ok.dateDone).toBeGreaterThan(Date.UTC(2020, 0, 1));
    expect(decodeResultMeta(resultFixture("success-nested").raw).result).toEqual({ név: "Zoë ✓", items: [1, 2.5, null, [true]] });
    expect(decodeResultMeta(resultFixture("success-none").raw)).toMatchObject({ ready: true, result: null });
    expect(decodeResultMeta(resultFixture("started").raw)).toMatchObject({ state: "STARTED", ready: false, result: { pid: 4242, hostname: "w1@host" } });
    const retry = decodeResultMeta(resultFixture("retry").raw);
    expect(retry).toMatchObject({ state: "RETRY", ready: false });
    expect(retry.error!.name).toBe("ValueError");
    expect(retry.traceback).toContain("Traceback");
    const grouped = decodeResultMeta(resultFixture("failure-with-parent-group").raw);
    expect(grouped.groupId).toBe("6f25c36f-62bf-4767-a722-000000000900");
    expect(grouped.parentId).toBe("6f25c36f-62bf-4767-a722-000000000901");
  });

  it("rebuilds exception details: name, args, message", () => {
    const v = decodeResultMeta(resultFixture("failure-valueerror").raw).error!;
    expect(v).toMatchObject({ name: "ValueError", excType: "ValueError", excModule: "builtins", message: "boom 42", state: "FAILURE" });
    expect(v.args).toEqual(["boom 42"]);
    expect(v.traceback).toContain("ValueError: boom 42");
    const os = decodeResultMeta(resultFixture("failure-multiargs").raw).error!;
    expect(os.name).toBe("FileNotFoundError");
    expect(os.args).toEqual([2, "No such file"]);
    expect(decodeResultMeta(resultFixture("failure-noargs").raw).error!.message).toBe("");
    const nested = decodeResultMeta(resultFixture("failure-nested-class").raw).error!;
    expect(nested.name).toBe("InnerError");
    expect(nested.excType).toBe("Outer.InnerError");
    expect(decodeResultMeta(resultFixture("revoked-expired").raw).error).toMatchObject({ name: "TaskRevokedError", message: "expired" });
  });

  it("accepts a plain-string exc_message (Celery does) and unknown payloads", () => {
    const r = decodeResultMeta({ status: "FAILURE", result: { exc_type: "KeyError", exc_message: "k", exc_module: "builtins" }, task_id: ID });
    expect(r.error!.args).toEqual(["k"]);
    const odd = decodeResultMeta({ status: "FAILURE", result: "just text", task_id: ID });
    expect(odd.error!.name).toBe("Exception");
    expect(odd.error!.message).toContain("just text");
  });

  it("rejects text that is not a result meta", () => {
    expect(() => decodeResultMeta("nope")).toThrow(MessageError);
    expect(() => decodeResultMeta("{}")).toThrow(/status/);
    expect(() => decodeResultMeta({ status: "SUCCESS", children: 3 })).toThrow(/children/);
  });
});

describe("encoding result meta like Celery 5.2", () => {
  it("SUCCESS matches the fixture key for key", () => {
    const f = resultFixture("success-int");
    const taskId = JSON.parse(f.raw).task_id as string;
    expect(stable(serializeResultMeta(successMeta(taskId, 5, { now: NOW })))).toEqual({ ...stable(f.raw), children: [] });
    expect(Object.keys(successMeta(taskId, 5))).toEqual(["status", "result", "traceback", "children", "date_done", "task_id"]);
  });

  it("puts group_id and parent_id where Celery does", () => {
    const f = resultFixture("failure-with-parent-group");
    const theirs = JSON.parse(f.raw) as Record<string, unknown>;
    const ours = failureMeta(theirs["task_id"] as string, named("ValueError", "x"), {
      groupId: theirs["group_id"] as string,
      parentId: theirs["parent_id"] as string,
      traceback: null,
    });
    expect(Object.keys(ours)).toEqual(Object.keys(theirs));
    expect(stable(serializeResultMeta(ours))).toEqual(stable(f.raw));
    const s = resultFixture("success-with-parent");
    const sTheirs = JSON.parse(s.raw) as Record<string, unknown>;
    expect(stable(serializeResultMeta(successMeta(sTheirs["task_id"] as string, 7, { parentId: sTheirs["parent_id"] as string })))).toEqual(stable(s.raw));
  });

  it("FAILURE for an error named ValueError is exactly Celery's ValueError shape", () => {
    const f = resultFixture("failure-valueerror");
    const theirs = JSON.parse(f.raw) as Record<string, unknown>;
    const ours = failureMeta(theirs["task_id"] as string, named("ValueError", "boom 42"), { traceback: theirs["traceback"] as string });
    expect(stable(serializeResultMeta(ours))).toEqual({ ...stable(f.raw), children: [] });
  });

  it("FAILURE keeps the JS stack (and so the JS error name) as traceback", () => {
    const err = new RangeError("too big");
    const meta = failureMeta(ID, err);
    expect(meta.result).toEqual({ exc_type: "ValueError", exc_message: ["too big"], exc_module: "builtins" });
    expect(meta.traceback).toMatch(/^RangeError: too big\n\s+at /);
    expect(meta.date_done).toMatch(/^\d{4}-.*\.\d{6}$/);
  });

  it("NotRegistered, REVOKED, STARTED and RETRY match the fixtures", () => {
    const cases: [string, (id: string) => Record<string, unknown>][] = [
      ["failure-notregistered", (id) => notRegisteredMeta(id, "tasks.nope")],
      ["revoked", (id) => revokedMeta(id, "revoked")],
      ["revoked-expired", (id) => revokedMeta(id, "expired")],
      ["started", (id) => startedMeta(id, { pid: 4242, hostname: "w1@host" })],
      ["retry", (id) => retryMeta(id, named("ValueError", "try again"), { traceback: JSON.parse(resultFixture("retry").raw).traceback })],
    ];
    for (const [name, make] of cases) {
      const f = resultFixture(name);
      const taskId = JSON.parse(f.raw).task_id as string;
      // Celery writes children null when it has no request object; we always write [].
      expect(stable(JSON.stringify(make(taskId))), name).toEqual({ ...stable(f.raw), children: [] });
    }
  });

  it("writes extended fields before task_id when asked", () => {
    const meta = buildResultMeta(ID, "SUCCESS", 1, null, { extended: { name: "tasks.add", args: [1], kwargs: {}, worker: "w@h", retries: 0, queue: "celery" } });
    expect(Object.keys(meta)).toEqual(["status", "result", "traceback", "children", "date_done", "name", "args", "kwargs", "worker", "retries", "queue", "task_id"]);
  });

  it("round-trips through decodeResultMeta, keeping Python exceptions' type and args", () => {
    const original = decodeResultMeta(resultFixture("failure-multiargs").raw).error!;
    const again = decodeResultMeta(serializeResultMeta(failureMeta(ID, original)));
    expect(again.error!.pythonClass).toBe("builtins.FileNotFoundError");
    expect(again.error!.args).toEqual([2, "No such file"]);
    expect(decodeResultMeta(serializeResultMeta(successMeta(ID, { a: [1, "ü"] }))).result).toEqual({ a: [1, "ü"] });
  });

  it("refuses a result that is not JSON-serializable", () => {
    expect(() => serializeResultMeta(successMeta(ID, 10n))).toThrow(MessageError);
  });

  it("refuses a stored result nested deeper than a reader can print (found by decoders-fuzz)", () => {
    // The exception's arguments become its message through JSON.stringify/String, which overflowed the
    // stack with a RangeError from inside decodeResultMeta.
    const deep = "[".repeat(20_000) + "]".repeat(20_000);
    const raw = `{"status":"FAILURE","result":{"exc_type":"ValueError","exc_message":[${deep}],"exc_module":"builtins"},"task_id":"${ID}"}`;
    expect(() => decodeResultMeta(raw)).toThrow(new MessageError('celery result: "result" nests deeper than 512 levels'));
  });
});

describe("JS → Python exception mapping", () => {
  const cases: [unknown, string, string][] = [
    [new Error("x"), "builtins", "Exception"],
    [new TypeError("x"), "builtins", "TypeError"],
    [new RangeError("x"), "builtins", "ValueError"],
    [new SyntaxError("x"), "builtins", "SyntaxError"],
    [new ReferenceError("x"), "builtins", "NameError"],
    [new EvalError("x"), "builtins", "RuntimeError"],
    [new URIError("x"), "builtins", "ValueError"],
    [new AggregateError([], "x"), "builtins", "Exception"],
    [named("ValueError", "x"), "builtins", "ValueError"],
    [named("KeyError", "x"), "builtins", "KeyError"],
    [named("TimeoutError", "x"), "builtins", "TimeoutError"],
    [named("NotImplementedError", "x"), "builtins", "NotImplementedError"],
    [new NotRegisteredError("tasks.x"), "celery.exceptions", "NotRegistered"],
    [new SoftTimeLimitExceeded(1000), "celery.exceptions", "SoftTimeLimitExceeded"],
    [named("ShippingError", "x"), "qworker.errors", "ShippingError"],
    [named("Bad Name-1", "x"), "qworker.errors", "Bad_Name_1"],
    // Never surface a BaseException that is not an Exception, nor classes Python cannot rebuild from one arg.
    [named("SystemExit", "x"), "qworker.errors", "SystemExit"],
    [named("KeyboardInterrupt", "x"), "qworker.errors", "KeyboardInterrupt"],
    [named("UnicodeDecodeError", "x"), "qworker.errors", "UnicodeDecodeError"],
  ];
  it.each(cases)("%s → %s.%s", (err, module, type) => {
    const exc = toCeleryException(err);
    expect(exc.exc_module).toBe(module);
    expect(exc.exc_type).toBe(type);
    expect(exc.exc_message).toEqual([(err as Error).message]);
  });

  it("handles values that are not errors and empty messages", () => {
    expect(toCeleryException("plain string")).toEqual({ exc_type: "Exception", exc_message: ["plain string"], exc_module: "builtins" });
    expect(toCeleryException({ code: 1 })).toEqual({ exc_type: "Exception", exc_message: ['{"code":1}'], exc_module: "builtins" });
    expect(toCeleryException(new Error())).toEqual({ exc_type: "Exception", exc_message: [], exc_module: "builtins" });
    expect(pythonExceptionFor("")).toEqual({ module: "qworker.errors", type: "Error" });
  });
});
