import { setImmediate as nextTurn } from "node:timers/promises";
import { runInNewContext } from "node:vm";
import { describe, expect, it } from "vitest";
import { collectStartupGarbage } from "../../src/worker/startup-gc.ts";

describe("collectStartupGarbage", () => {
  it("collects an unreachable object at once and leaves gc exposed nowhere", async () => {
    let target: object | undefined = { payload: "x".repeat(1000) };
    const ref = new WeakRef(target);
    target = undefined;
    // A WeakRef's target is kept alive until the end of the job that created the ref.
    await nextTurn();
    expect(collectStartupGarbage()).toBeTypeOf("number");
    expect(ref.deref()).toBeUndefined();
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
    expect(runInNewContext("typeof gc")).toBe("undefined");
  });
});
