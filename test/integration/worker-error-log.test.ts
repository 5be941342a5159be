/**
 * A task that throws a message of megabytes: the worker's log lines for its retry and its failure carry
 * the message's start (an ellipsis and its length), not the whole of it, while the stored result keeps the
 * whole message. A 20 MB message made a 20 MB log line.
 */
import { describe, expect, it } from "vitest";
import { defineTask } from "../../src/index.ts";
import type { TaskDefinition } from "../../src/tasks/definition.ts";
import { startSqliteWorker } from "../support/sqlite-worker.ts";

describe("a task's error message of megabytes", () => {
  it("is cut in the worker's retry and failure log lines, and stored whole", async () => {
    const message = `upstream said: ${"e".repeat(2 * 1024 * 1024)}`;
    const task = defineTask({ name: "t.loud" }, () => {
      throw new Error(message);
    });
    const { client, about: linesAbout, close } = await startSqliteWorker([task as TaskDefinition], { retry: { max: 1, countdown: 0.01 } });
    try {
      const ref = await client.send("t.loud");
      const err = await ref.get({ timeout: 10 }).then(() => undefined, (e: unknown) => e as Error);
      expect(err?.message).toBe(message);
      const about = linesAbout(ref.id);
      const cut = `upstream said: ${"e".repeat(300 - 15)}… (${message.length} characters)`;
      expect(about.filter((m) => / retry 1\/1 /.test(m))).toEqual([expect.stringContaining(cut)]);
      expect(about.filter((m) => / failed after 1 retries: /.test(m))).toEqual([expect.stringContaining(`Error: ${cut}`)]);
      for (const m of about) expect(m.length).toBeLessThan(1000);
    } finally {
      await close();
    }
  });
});
