/**
 * A worker that creates its embedded broker file says where (a typo in the path used to start a worker on
 * a new, empty broker without a word); one that opens an existing file does not.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanEnv, qworker, ROOT, waitFor } from "./embedded-procs.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-e2e-new-broker-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a worker on an embedded broker file", () => {
  it("says when it created the file, and not when the file was there", async () => {
    const file = path.join(dir, "sub", "typo.db");
    const start = () => qworker(["worker", "--broker", `sqlite://${file}`, "--tasks", path.join(ROOT, "tasks")], { cwd: dir, env: cleanEnv() });
    const created = `created the broker file ${file}; senders must use this file too`;
    for (const expectCreated of [true, false]) {
      const w = start();
      try {
        await waitFor("the worker's task list", 20_000, () => /"tasks \(\d+\)/.test(w.stderr()));
        expect(w.stderr().includes(created)).toBe(expectCreated);
      } finally {
        await w.kill();
      }
    }
  }, 45_000);
});
