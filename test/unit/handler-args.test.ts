import { describe, expect, it } from "vitest";
import { MESSAGE_VERSION, type TaskMessage } from "../../src/protocol/message.ts";
import { defineTask } from "../../src/tasks/define.ts";
import { handlerArgs } from "../../src/worker/executor.ts";

function msg(args: unknown[], kwargs: Record<string, unknown> = {}): TaskMessage {
  return { v: MESSAGE_VERSION, id: "1", task: "t", args, kwargs, queue: "default", priority: 0, retries: 0, sentAt: 0 };
}

// The worker sees every task as TaskDefinition<unknown[]>: arguments arrive as JSON data.
const withParams = defineTask({ name: "demo.add", params: ["x", "y", "z"] }, (...xyz: unknown[]) => xyz.length);
const noParams = defineTask("demo.plain", (...a: unknown[]) => a.length);

describe("handlerArgs: positional arguments and Celery-style kwargs", () => {
  it("positional arguments pass through in order", () => {
    expect(handlerArgs(withParams, msg([1, 2, 3]))).toEqual([1, 2, 3]);
    expect(handlerArgs(noParams, msg([1, 2]))).toEqual([1, 2]);
  });

  it("kwargs map onto the named parameters' positions", () => {
    expect(handlerArgs(withParams, msg([], { y: 2, x: 1 }))).toEqual([1, 2]);
    expect(handlerArgs(withParams, msg([1], { z: 3 }))).toEqual([1, undefined, 3]);
  });

  it("a kwarg overrides the positional value at its position", () => {
    expect(handlerArgs(withParams, msg([1, 2], { y: 20 }))).toEqual([1, 20]);
  });

  it("kwargs not named in params ride along as a last object argument", () => {
    expect(handlerArgs(withParams, msg([1, 2], { x: 10, extra: true }))).toEqual([10, 2, { extra: true }]);
  });

  it("without params, all kwargs ride along as a last object argument", () => {
    expect(handlerArgs(noParams, msg([1], { a: 5 }))).toEqual([1, { a: 5 }]);
  });

  it("the message's args are not mutated", () => {
    const m = msg([1], { z: 3 });
    handlerArgs(withParams, m);
    expect(m.args).toEqual([1]);
  });
});
