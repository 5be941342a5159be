/**
 * `task.delay()` / `task.applyAsync()` send with the definition's queue and priority unless the call says
 * otherwise (priority was dropped: only the queue was carried over). So does `client.send(task, args)` on an
 * app's own client, with the arguments and result typed from the handler (tsc checks this file).
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { closeDefaultClient } from "../../src/client/default.ts";
import { createClient, defineTask, type TaskRef } from "../../src/index.ts";
import { decodeMessage } from "../../src/protocol/message.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-define-send-"));
const url = `sqlite://${path.join(dir, "broker.db")}`;
let observer: Transport;
const saved = process.env.QWORKER_BROKER_URL;

beforeAll(async () => {
  process.env.QWORKER_BROKER_URL = url;
  observer = createSqliteTransport(url);
  await observer.connect();
});
afterAll(async () => {
  await closeDefaultClient();
  await observer.close();
  if (saved === undefined) delete process.env.QWORKER_BROKER_URL;
  else process.env.QWORKER_BROKER_URL = saved;
  rmSync(dir, { recursive: true, force: true });
});

async function sent(id: string): Promise<{ queue: string; priority: number }> {
  const where = await observer.describeTask!(id);
  expect(where).not.toBeNull();
  const msg = decodeMessage(where!.payload);
  return { queue: where!.queue, priority: msg.priority };
}

describe("a defined task's sends", () => {
  it("carry its queue and priority; the call's own options win", async () => {
    const report = defineTask({ name: "reports.nightly", queue: "reports", priority: 7 }, (day: string) => day);
    expect(await sent((await report.delay("mon")).id)).toEqual({ queue: "reports", priority: 7 });
    expect(await sent((await report.applyAsync(["tue"], { priority: 2, queue: "urgent" })).id)).toEqual({ queue: "urgent", priority: 2 });
    const plain = defineTask({ name: "reports.plain" }, () => 1);
    expect(await sent((await plain.delay()).id)).toEqual({ queue: "default", priority: 0 });
  });

  it("client.send(task, args): typed from the handler, with the definition's queue and priority, on that client", async () => {
    const client = await createClient({ brokerUrl: url });
    try {
      const report = defineTask({ name: "reports.typed", queue: "reports", priority: 4 }, (day: string, rows: number) => ({ day, rows }));
      const ref: TaskRef<{ day: string; rows: number }> = await client.send(report, ["mon", 3]);
      expect(await sent(ref.id)).toEqual({ queue: "reports", priority: 4 });
      const where = await observer.describeTask!(ref.id);
      expect(decodeMessage(where!.payload)).toMatchObject({ task: "reports.typed", args: ["mon", 3] });
      expect(await sent((await client.send(report, ["tue", 1], { queue: "urgent" })).id)).toEqual({ queue: "urgent", priority: 4 });
      // Compiled, never run: tsc refuses arguments the handler does not take.
      const typeChecks = async () => {
        // @ts-expect-error the handler takes (day: string, rows: number)
        await client.send(report, [1, 2]);
        // @ts-expect-error the result is { day, rows }, not a number
        const n: number = await (await client.send(report, ["wed", 2])).get();
        return n;
      };
      void typeChecks;
      const unnamed = defineTask(() => 1);
      await expect(client.send(unnamed, [])).rejects.toMatchObject({ code: "E_TASK_UNNAMED" });
    } finally {
      await client.close();
    }
  });
});
