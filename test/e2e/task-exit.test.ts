/**
 * A task in the async pool that calls process.exit() takes the worker with it; the worker's log now names
 * the task (it just stopped, without a word). Its task comes back to the queue after the lease lapses.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanEnv, qworker, ROOT, waitFor } from "./embedded-procs.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-e2e-task-exit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a task that calls process.exit()", () => {
  it("ends the worker with its code, and the log says which task did it", async () => {
    mkdirSync(path.join(dir, "tasks"));
    writeFileSync(path.join(dir, "package.json"), '{ "type": "module" }\n');
    writeFileSync(
      path.join(dir, "tasks", "bye.ts"),
      `import { defineTask } from ${JSON.stringify(path.join(ROOT, "src", "index.ts"))};\nexport const bye = defineTask("t.bye", async () => {\n  await new Promise((r) => setTimeout(r, 10));\n  process.exit(7);\n});\n`,
    );
    const broker = `sqlite://${path.join(dir, "b.db")}`;
    const env = cleanEnv();
    const worker = qworker(["worker", "--broker", broker, "--tasks", "tasks", "--log-format", "json"], { cwd: dir, env });
    try {
      await waitFor("the worker's task list", 20_000, () => /"tasks \(\d+\)/.test(worker.stderr()));
      const sent = qworker(["send", "t.bye", "--broker", broker], { cwd: dir, env });
      expect(await sent.exited).toBe(0);
      const id = sent.stdout().trim();
      expect(await worker.exited).toBe(7);
      expect(worker.stderr()).toContain(`task t.bye[${id}] called process.exit(7): the worker exits with it`);
    } finally {
      await worker.kill();
    }
  }, 40_000);
});
