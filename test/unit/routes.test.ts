import { describe, expect, it } from "vitest";
import { buildEnqueueItem } from "../../src/client/build-message.ts";
import { compileRoutes } from "../../src/client/routes.ts";
import { configSchema } from "../../src/config/schema.ts";

describe("task_routes: the queue of a task sent by name", () => {
  const route = compileRoutes({ "reports.*": "reports", "reports.urgent": "urgent", "*.thumbnail": "images", "a.b+c": "odd" });

  it("an exact name wins over any pattern; otherwise the first pattern that matches", () => {
    expect(route("reports.urgent")).toBe("urgent");
    expect(route("reports.monthly")).toBe("reports");
    expect(route("video.thumbnail")).toBe("images");
    expect(route("shop.send_invoice_email")).toBeUndefined();
  });

  it("only * is special in a pattern", () => {
    expect(route("a.b+c")).toBe("odd");
    expect(route("aXb+c")).toBeUndefined();
    expect(compileRoutes({ "re.po?ts*": "q" })("re.po?ts.x")).toBe("q");
    expect(compileRoutes({ "re.po?ts*": "q" })("re.ports.x")).toBeUndefined();
  });

  it("a send names its queue, else its route, else default_queue", () => {
    const defaults = { queue: "default", maxPayloadBytes: 1 << 20, route };
    expect(buildEnqueueItem("reports.monthly", [], {}, defaults).queue).toBe("reports");
    expect(buildEnqueueItem("reports.monthly", [], { queue: "mine" }, defaults).queue).toBe("mine");
    expect(buildEnqueueItem("shop.x", [], {}, defaults).queue).toBe("default");
  });

  it("the config key takes a mapping of names or patterns to queue names", () => {
    expect(configSchema.parse({}).task_routes).toEqual({});
    expect(configSchema.parse({ task_routes: { "reports.*": "reports" } }).task_routes).toEqual({ "reports.*": "reports" });
    expect(() => configSchema.parse({ task_routes: { "reports.*": "" } })).toThrow();
  });

  it("a route may be written as Celery writes it, {queue: name}; other Celery route keys are refused", () => {
    expect(configSchema.parse({ task_routes: { "reports.*": { queue: "reports" }, "shop.x": "fast" } }).task_routes).toEqual({
      "reports.*": "reports",
      "shop.x": "fast",
    });
    expect(() => configSchema.parse({ task_routes: { "reports.*": { queue: "reports", routing_key: "r" } } })).toThrow();
    expect(() => configSchema.parse({ task_routes: { "reports.*": {} } })).toThrow();
    expect(() => configSchema.parse({ task_routes: { "reports.*": 5 } })).toThrow(/expected a queue name, or \{queue: name\} as Celery writes it/);
  });
});
