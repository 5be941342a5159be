/**
 * A write that finds another connection holding SQLite's write lock waits for it without blocking the
 * event loop (only a couple of milliseconds are waited inside SQLite), so a worker stays responsive while
 * other processes write to the same broker file.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import { buildEnqueueItem } from "../../src/client/build-message.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A connected transport on a fresh file, and a second connection that holds the write lock. */
async function lockedBroker(busyTimeoutMs: number) {
  const dir = mkdtempSync(join(tmpdir(), "qw-lock-"));
  dirs.push(dir);
  const file = join(dir, "broker.db");
  const t = createSqliteTransport(`sqlite://${file}`, { busyTimeoutMs });
  await t.connect();
  const holder = new Database(file);
  holder.exec("BEGIN IMMEDIATE");
  return { t, holder };
}

const item = (n: number) => buildEnqueueItem("lock.t", [n], {}, { queue: "default", maxPayloadBytes: 1 << 20 });

describe("embedded broker: waiting for the write lock", () => {
  it("keeps the event loop running while another connection holds the lock", async () => {
    const { t, holder } = await lockedBroker(5000);
    // The holder is in this process, so it can only let go if this process's timers still run.
    setTimeout(() => holder.exec("COMMIT"), 300);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      const started = Date.now();
      const [res] = await t.enqueue([item(1)]);
      expect(res?.duplicate).toBe(false);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(ticks).toBeGreaterThanOrEqual(10);
      expect((await t.stats(["default"]))[0]?.ready).toBe(1);
    } finally {
      clearInterval(timer);
      holder.close();
      await t.close();
    }
  });

  it("still fails with a broker error once busyTimeoutMs has passed", async () => {
    const { t, holder } = await lockedBroker(200);
    try {
      const started = Date.now();
      await expect(t.enqueue([item(2)])).rejects.toThrow(/database is locked/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    } finally {
      holder.exec("ROLLBACK");
      holder.close();
      await t.close();
    }
  });
});
