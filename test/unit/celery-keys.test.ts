import { describe, expect, it } from "vitest";
import {
  bindingKey,
  bindingMember,
  brpopKeys,
  fanoutChannel,
  KOMBU_SEP,
  parseBindingMember,
  priorityStep,
  queueFromListKey,
  queueListKey,
  queueListKeys,
  resultChannel,
  resultKey,
} from "../../src/protocol/celery/index.ts";
import { layoutFixture, onlyEntry } from "../fixtures/celery/load.ts";

describe("kombu Redis key layout", () => {
  it("uses the separator kombu wrote in the captured binding sets", () => {
    const layout = layoutFixture();
    expect(KOMBU_SEP).toBe(layout.sep);
    expect(layout.bindings[bindingKey("celery")]).toEqual([bindingMember("celery", "celery")]);
    expect(layout.bindings[bindingKey("emails")]).toEqual([bindingMember("emails", "emails")]);
    expect(parseBindingMember("celery\x06\x16\x06\x16celery")).toEqual({ routingKey: "celery", pattern: "", queue: "celery" });
  });

  it("rounds priorities down to kombu's steps, like the captured lists", () => {
    for (let p = 0; p <= 9; p++) expect(queueListKey("celery", p), `priority ${p}`).toBe(onlyEntry(`v2-priority-${p}`).key);
    expect([-5, 0, 2, 3, 5, 6, 8, 9, 12, Number.NaN].map(priorityStep)).toEqual([0, 0, 0, 3, 3, 6, 6, 9, 9, 0]);
    expect(queueListKeys("q")).toEqual(["q", "q\x06\x163", "q\x06\x166", "q\x06\x169"]);
    expect(queueListKey("q", 3, "pfx:")).toBe("pfx:q\x06\x163");
  });

  it("orders BRPOP keys priority first, then queue", () => {
    expect(brpopKeys(["a", "b"])).toEqual(["a", "b", "a\x06\x163", "b\x06\x163", "a\x06\x166", "b\x06\x166", "a\x06\x169", "b\x06\x169"]);
  });

  it("maps a popped key back to its queue", () => {
    expect(queueFromListKey("celery")).toBe("celery");
    expect(queueFromListKey("celery\x06\x169")).toBe("celery");
    expect(queueFromListKey("pfx:emails\x06\x163", "pfx:")).toBe("emails");
  });

  it("names result keys, channels and fanout topics", () => {
    expect(resultKey("abc")).toBe("celery-task-meta-abc");
    expect(resultChannel("abc")).toBe(resultKey("abc"));
    expect(fanoutChannel(0, "celery.pidbox")).toBe("/0.celery.pidbox");
    expect(fanoutChannel(0, "celeryev", "worker.heartbeat")).toBe("/0.celeryev/worker.heartbeat");
  });
});
