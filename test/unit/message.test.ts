import { describe, expect, it } from "vitest";
import { MessageError } from "../../src/errors.ts";
import { decodeMessage, encodeMessage, MESSAGE_VERSION, type TaskMessage } from "../../src/protocol/message.ts";

const valid: TaskMessage = {
  v: MESSAGE_VERSION,
  id: "0b7c6f1e-1",
  task: "shop.send_invoice_email",
  args: [1234],
  kwargs: {},
  queue: "default",
  priority: 0,
  retries: 0,
  sentAt: 1_700_000_000_000,
};

function decodeError(raw: string): MessageError {
  try {
    decodeMessage(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(MessageError);
    return err as MessageError;
  }
  throw new Error("expected decodeMessage to throw");
}

describe("message v1", () => {
  it("round-trips through encode/decode, optional fields included", () => {
    const full: TaskMessage = { ...valid, eta: 1, expires: 2, timeLimitMs: 3, softTimeLimitMs: 4, maxRetries: 5, uniqueKey: "k", ignoreResult: true, origin: "h:1" };
    expect(decodeMessage(encodeMessage(valid))).toEqual(valid);
    expect(decodeMessage(encodeMessage(full))).toEqual(full);
  });

  it("rejects a payload that is not JSON", () => {
    const err = decodeError("{not json");
    expect(err.message).toMatch(/^payload is not valid JSON \(/);
    expect(err.code).toBe("E_MESSAGE");
  });

  it("names an unsupported version", () => {
    expect(decodeError(JSON.stringify({ ...valid, v: 2 })).message).toBe("unsupported message version 2 (this worker reads v1)");
  });

  it("rejects a message without a version", () => {
    const { v: _v, ...rest } = valid;
    expect(decodeError(JSON.stringify(rest)).message).toMatch(/^invalid message: v: /);
  });

  it("names the field that is wrong", () => {
    expect(decodeError(JSON.stringify({ ...valid, args: "1234" })).message).toMatch(/^invalid message: args: /);
    expect(decodeError(JSON.stringify({ ...valid, priority: 10 })).message).toMatch(/^invalid message: priority: /);
    expect(decodeError(JSON.stringify({ ...valid, task: "" })).message).toMatch(/^invalid message: task: /);
    expect(decodeError(JSON.stringify({ ...valid, kwargs: [] })).message).toMatch(/^invalid message: kwargs: /);
  });

  it("rejects unknown fields (a payload never smuggles in options the worker would ignore)", () => {
    expect(decodeError(JSON.stringify({ ...valid, module: "/tmp/evil.js" })).message).toMatch(/^invalid message: /);
  });

  it("rejects JSON that is not an object", () => {
    expect(decodeError("null").message).toMatch(/^invalid message/);
    expect(decodeError("[1,2]").message).toMatch(/^invalid message/);
  });

  it("keeps a reason that quotes the payload on one line (found by test/unit/decoders-fuzz.test.ts)", () => {
    // JSON.parse's error quotes the text around the fault, line breaks and terminal escapes included.
    const err = decodeError('{"v":1,\r\n"id":\u2028\u001b[31m x}');
    expect(err.message).toMatch(/^payload is not valid JSON/);
    expect([...err.message].filter((c) => c < " " || c === "\u2028")).toEqual([]);
    expect(err.message).toContain("\\r\\n");
    expect(err.message).toContain("\\u2028\\u001b[31m");
  });

  it("keeps a reason short when it quotes a long value (found by decoders-fuzz)", () => {
    // It is stored with the dead-lettered task, logged and shown: it quoted 100 KB whole.
    const version = decodeError(JSON.stringify({ ...valid, v: "x".repeat(100_000) })).message;
    expect(version).toMatch(/^unsupported message version "x{70,}… \(100002 characters\) \(this worker reads v1\)$/);
    const key = decodeError(JSON.stringify({ ...valid, ["k".repeat(100_000)]: 1 })).message;
    expect(key.length).toBeLessThanOrEqual(1100);
    expect(key).toMatch(/^invalid message: .*kkk… \(\d+ characters\)$/);
  });

  it("refuses nesting deeper than a worker can write back, naming the field (found by decoders-fuzz)", () => {
    // JSON.parse reads any depth; JSON.stringify overflowed the stack re-encoding it for a retry, which
    // then failed for ever instead of dead-lettering the task.
    const nested = (levels: number) => "[".repeat(levels) + "]".repeat(levels);
    const raw = (args: string, kwargs = "{}") => `{"v":1,"id":"d","task":"t","args":${args},"kwargs":${kwargs},"queue":"q","priority":0,"retries":0,"sentAt":1}`;
    expect(decodeError(raw(`[${nested(20_000)}]`)).message).toBe('payload "args" nests deeper than 512 levels, more than a worker can write back');
    expect(decodeError(raw("[]", `{"a":${nested(600)}}`)).message).toMatch(/^payload "kwargs" nests deeper than 512 levels/);
    // The message object is level 1: 512 levels in all are read and re-encoded.
    const deepest = decodeMessage(raw(`[${nested(510)}]`));
    expect(decodeMessage(encodeMessage(deepest))).toEqual(deepest);
    expect(decodeError(raw(`[${nested(511)}]`)).message).toMatch(/nests deeper than 512 levels/);
  });
});
