import { readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * What a worker process loads is part of its memory: the Celery protocol modules, for one, cost a Redis worker
 * about 8 MB of RSS when the Redis transport imported them for a rarely used revoke path (bench/README.md,
 * B3). Modules that only some workers need are imported dynamically where they are used; this walks the
 * static (value) imports from the worker's entry points and checks none of them is reached.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

const IMPORT = /(?:^|\n)\s*(?:import|export)\s+(?!type\s)(?:[\s\S]*?\sfrom\s+)?"(\.{1,2}\/[^"]+)";/g;

function staticGraph(entries: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = entries.map((e) => join(root, e));
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(IMPORT)) todo.push(resolve(dirname(file), m[1]!));
  }
  return new Set([...seen].map((f) => relative(root, f)));
}

describe("modules a worker loads only when it needs them", () => {
  const graph = staticGraph(["src/cli/worker.ts", "src/worker/worker.ts", "src/broker/redis/index.ts", "src/events/observe.ts"]);

  it("walks the real graph (the entry points reach the Redis transport's own modules)", () => {
    expect(graph).toContain("src/broker/redis/redis-transport.ts");
    expect(graph).toContain("src/protocol/message.ts");
  });

  // src/celery/config.ts is the `celery:` part of the config schema, which every worker validates.
  const needed = new Set(["src/celery/config.ts"]);

  it.each([
    ["the Celery protocol (a revoke naming a Celery lease loads it)", "src/protocol/celery/"],
    ["the Celery consumer (config.celery loads it)", "src/celery/"],
    ["the Prometheus metrics (metrics_port loads them)", "src/metrics/"],
    ["the embedded broker (a sqlite: broker_url loads it)", "src/broker/embedded/"],
  ])("%s", (_what, dir) => {
    expect([...graph].filter((f) => f.startsWith(dir) && !needed.has(f))).toEqual([]);
  });
});
