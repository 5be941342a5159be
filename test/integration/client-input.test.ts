/**
 * What an app hands createClient and sendMany, checked at the edge: one-line E_USAGE / E_CONFIG errors
 * naming the option, instead of a raw TypeError or a fall-back to another broker.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createClient } from "../../src/index.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-client-input-"));
const url = `sqlite://${path.join(dir, "broker.db")}`;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("an app's client input", () => {
  it("sendMany refuses what is not a list of { task, args?, options? }, and sends nothing", async () => {
    const client = await createClient({ brokerUrl: url });
    try {
      await expect(client.sendMany("x" as never)).rejects.toMatchObject({ code: "E_USAGE", message: 'sendMany expects a list of { task, args?, options? }, found string "x"' });
      await expect(client.sendMany([{ task: "demo.add" }, null] as never)).rejects.toMatchObject({ code: "E_USAGE", message: "sendMany: call 1 must be { task, args?, options? }, found null" });
      await expect(client.sendMany([{ task: "demo.add", options: 5 }] as never)).rejects.toMatchObject({ code: "E_USAGE", message: "sendMany: call 0's options must be an object, found number" });
      expect((await client.transport.stats()).reduce((n, q) => n + q.ready, 0)).toBe(0);
    } finally {
      await client.close();
    }
  });

  it("a bad or empty brokerUrl is reported as createClient's option, not a CLI flag, and never falls back to the config's", async () => {
    for (const brokerUrl of ["foo://x", ""]) {
      await expect(createClient({ brokerUrl })).rejects.toMatchObject({
        code: "E_CONFIG",
        message: `createClient option brokerUrl: key "broker_url": expected a URL starting with redis://, rediss://, redis+sentinel://, redis+cluster:// or sqlite://, found string ${JSON.stringify(brokerUrl)}`,
      });
    }
  });
});
