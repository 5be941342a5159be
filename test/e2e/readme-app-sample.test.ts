/**
 * The README's "Sending from application code" sample, run as written (the block is read from README.md)
 * against a worker on a real Redis: it prints the result and its refs, and then the script exits by
 * itself. It hung for ever when the sample did not close the client `.delay()` opens.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { redisServerAvailable, startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { ROOT, cleanEnv, qworker, start, waitFor, type Child } from "./embedded-procs.ts";

/** The README's code block under the heading "Sending from application code". */
function readmeSample(): string {
  const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("### Sending from application code"));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error("README: no ts block under 'Sending from application code'");
  return m[1]!;
}

describe.skipIf(!redisServerAvailable())("the README's application-code sample", () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-e2e-readme-app-"));
  let redis: RedisServerHandle;
  let worker: Child;

  beforeAll(async () => {
    redis = await startRedisServer();
    worker = qworker(["worker", "--broker", redis.url, "--tasks", path.join(ROOT, "tasks"), "--loglevel", "info"], { env: cleanEnv() });
    await waitFor("the worker to list its tasks", 20_000, () => /"tasks \(\d+\)/.test(worker.stderr()));
  }, 30_000);
  afterAll(async () => {
    await worker?.kill();
    await redis?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it("prints the result and the refs, then exits by itself", async () => {
    // An app's project: "qworker" installed (a link to this checkout), the example tasks where it keeps its own.
    mkdirSync(path.join(dir, "node_modules"));
    symlinkSync(ROOT, path.join(dir, "node_modules", "qworker"));
    writeFileSync(path.join(dir, "package.json"), '{ "type": "module" }\n');
    const app = path.join(dir, "app.ts");
    writeFileSync(app, readmeSample().replace('"./tasks/shop/invoices.ts"', JSON.stringify(path.join(ROOT, "tasks", "shop", "invoices.ts"))));

    const run = start(["--import", "tsx", app], { env: cleanEnv({ QWORKER_BROKER_URL: redis.url }) });
    const exited = await Promise.race([run.exited, new Promise((r) => setTimeout(() => r("still running after 20 s"), 20_000))]);
    await run.kill();
    expect(run.stderr()).toBe("");
    expect(exited).toBe(0);
    const lines = run.stdout().trim().split("\n");
    expect(lines[0]).toMatch(/^[0-9a-f-]{36} \{ orderId: 1234, sent: true \}$/);
    expect(lines.slice(1).join(" ")).toMatch(/^\[\s*'[0-9a-f-]{36}',\s*'[0-9a-f-]{36}',\s*'[0-9a-f-]{36}'\s*\]$/);
  }, 40_000);
});
