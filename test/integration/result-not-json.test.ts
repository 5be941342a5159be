/**
 * A task whose return value JSON cannot hold (a BigInt, a cycle) fails: it is logged as a failure, counted
 * as one, not retried (the same value would come back) and dead-lettered. It was logged and counted as
 * succeeded while a FAILURE record was stored, and nothing reached the dead-letter set.
 */
import { describe, expect, it } from "vitest";
import { defineTask } from "../../src/index.ts";
import type { TaskDefinition } from "../../src/tasks/definition.ts";
import { waitFor } from "../e2e/helpers.ts";
import { startSqliteWorker } from "../support/sqlite-worker.ts";

describe("a result JSON cannot hold", () => {
  it("fails the task once (no retries), with a failure log line, and dead-letters it", async () => {
    let runs = 0;
    const cyclic = () => {
      runs++;
      const a: Record<string, unknown> = {};
      a.self = a;
      return a;
    };
    const tasks = [defineTask({ name: "t.big" }, () => 10n ** 30n), defineTask({ name: "t.cyclic" }, cyclic), defineTask({ name: "t.fine" }, () => ({ ok: 1 }))];
    const { client, transport, about, close } = await startSqliteWorker(tasks as TaskDefinition[], { concurrency: 2, retry: { max: 3, countdown: 0.01 } });
    try {
      const big = await client.send("t.big");
      const cyc = await client.send("t.cyclic");
      const fine = await client.send("t.fine");
      expect(await fine.get({ timeout: 10 })).toEqual({ ok: 1 });
      await expect(big.get({ timeout: 10 })).rejects.toMatchObject({ message: expect.stringMatching(/^result is not JSON-serializable \(Do not know how to serialize a BigInt\)/) });
      await expect(cyc.get({ timeout: 10 })).rejects.toMatchObject({ message: expect.stringMatching(/^result is not JSON-serializable \(/) });
      await waitFor("both dead-lettered", async () => ((await transport.listDead()).length === 2 ? true : undefined), 5000);
      expect(runs).toBe(1);
      expect(about(big.id).some((m) => / succeeded /.test(m))).toBe(false);
      expect(about(big.id).some((m) => /failed: NonRetryableError: result is not JSON-serializable/.test(m))).toBe(true);
      expect(about(cyc.id).some((m) => / succeeded /.test(m))).toBe(false);
    } finally {
      await close();
    }
  });
});
