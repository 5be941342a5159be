/**
 * createTransport's embedded-broker options: `mustExist` (commands on tasks already sent never create an
 * empty broker) and `onCreate` (`send` says where it created one).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createTransport } from "../../src/broker/factory.ts";
import { BrokerError } from "../../src/errors.ts";

const dir = mkdtempSync(join(tmpdir(), "qw-must-exist-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("embedded broker: mustExist and onCreate", () => {
  it("mustExist: a missing database is a one-line BrokerError naming its path; neither it nor its directory is created", async () => {
    const file = join(dir, "absent", "broker.db");
    const t = await createTransport(`sqlite://${file}`, { mustExist: true });
    const err = await t.connect().then(() => undefined, (e: unknown) => e);
    await t.close();
    expect(err).toBeInstanceOf(BrokerError);
    expect((err as BrokerError).exitCode).toBe(3);
    expect((err as Error).message).toMatch(new RegExp(`^no embedded broker at ${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: .*QWORKER_BROKER_URL$`));
    expect((err as Error).message).not.toContain("\n");
    expect(existsSync(join(dir, "absent"))).toBe(false);
  });

  it("onCreate hears the path once, when connect() creates the database; mustExist then opens it", async () => {
    const file = join(dir, "new", "broker.db");
    const created: string[] = [];
    const first = await createTransport(`sqlite://${file}`, { onCreate: (f) => created.push(f) });
    await first.connect();
    await first.enqueue([{ id: "t1", queue: "q", priority: 0, payload: "p" }]);
    await first.close();
    expect(created).toEqual([file]);

    const again = await createTransport(`sqlite://${file}`, { onCreate: (f) => created.push(f) });
    await again.connect();
    await again.close();
    expect(created).toEqual([file]);

    const reader = await createTransport(`sqlite://${file}`, { mustExist: true });
    await reader.connect();
    try {
      expect(await reader.stats(["q"])).toEqual([{ name: "q", ready: 1, delayed: 0, active: 0, dead: 0 }]);
    } finally {
      await reader.close();
    }
  });
});
