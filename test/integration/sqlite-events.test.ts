/**
 * The embedded broker keeps each flush's task events in one row, one JSON text per line; rows written by
 * earlier versions hold one event each. Readers see one list either way, newest `limit` events, oldest first.
 * Its per-minute counters are integers: a counter another program stored as something else is neither
 * added to nor counted (`inspect stats` notes it), as on Redis.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import type { CounterRow } from "../../src/broker/transport.ts";
import { statsView } from "../../src/cli/inspect/views.ts";
import { eventLinesOf } from "../support/event-lines.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const ev = (i: number) => JSON.stringify({ i });

describe("embedded broker: task events", () => {
  it("reads old one-event rows and new one-flush rows as one list, and caps by events", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qw-events-"));
    dirs.push(dir);
    const file = join(dir, "broker.db");
    const t = createSqliteTransport(`sqlite://${file}`);
    await t.connect();
    try {
      const db = new Database(file);
      for (const i of [0, 1, 2]) db.prepare("INSERT INTO events (data) VALUES (?)").run(ev(i)); // as before
      db.close();
      await t.publishActivity!({ events: eventLinesOf([3, 4, 5, 6].map(ev)), eventsMaxLen: 1000, counters: [], countersTtlMs: 60_000 });
      await t.publishActivity!({ events: eventLinesOf([7, 8].map(ev)), eventsMaxLen: 1000, counters: [], countersTtlMs: 60_000 });
      const read = async (limit: number) => (await t.readEvents!(limit)).map((e) => (JSON.parse(e.data) as { i: number }).i);
      expect(await read(100)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
      expect(await read(5)).toEqual([4, 5, 6, 7, 8]);
      const ids = (await t.readEvents!(100)).map((e) => e.id);
      expect(new Set(ids).size).toBe(ids.length);

      // 200 flushes of 10 under a cap of 50: about 50 events are kept (whole rows), the newest.
      for (let f = 0; f < 200; f++) {
        await t.publishActivity!({ events: eventLinesOf(Array.from({ length: 10 }, (_, k) => ev(1000 + f * 10 + k))), eventsMaxLen: 50, counters: [], countersTtlMs: 60_000 });
      }
      const kept = await read(10_000);
      expect(kept.length).toBeGreaterThanOrEqual(50);
      expect(kept.length).toBeLessThanOrEqual(60);
      expect(kept.at(-1)).toBe(2999);
    } finally {
      await t.close();
    }
  });
});

describe("embedded broker: task counters", () => {
  it("adds to and reads only integers: a counter stored as text is replaced by the next count, and left out of reads with a note", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qw-counters-"));
    dirs.push(dir);
    const file = join(dir, "broker.db");
    const t = createSqliteTransport(`sqlite://${file}`);
    await t.connect();
    try {
      const now = Date.now();
      const minute = Math.floor(now / 60_000);
      const count = (rows: CounterRow[]) => t.publishActivity!({ events: eventLinesOf([]), eventsMaxLen: 1000, counters: rows, countersTtlMs: 3_600_000 });
      await count([
        { minute, key: "received:a", n: 2 },
        { minute, key: "succeeded:a", n: 2 },
        { minute, key: "received:b", n: 1 },
      ]);
      // Another program's values, of types qworker never writes: text (a number's prefix, and a number as
      // text with a space, which the column's affinity does not convert) and a blob.
      const db = new Database(file);
      const put = db.prepare("UPDATE counters SET n = ? WHERE minute = ? AND key = ?");
      put.run("12abc", minute, "received:a");
      put.run(Buffer.from("9"), minute, "succeeded:a");
      put.run("5 tasks", minute, "received:b");
      db.close();
      // Added to, the text would count its "12" (SQLite reads '12abc' + 3 as 15) and the blob its 9.
      await count([
        { minute, key: "received:a", n: 3 },
        { minute, key: "succeeded:a", n: 3 },
      ]);
      const notes: string[] = [];
      const rows = await t.readCounters!(minute, (line) => notes.push(line));
      expect(rows).toEqual([
        { minute, key: "received:a", n: 3 },
        { minute, key: "succeeded:a", n: 3 },
      ]);
      expect(notes).toHaveLength(1);
      expect(notes[0]).toContain('"received:b"');
      expect(notes[0]).toContain('"5 tasks"');
      const stats = await statsView({ limit: 100, minutes: 5 }).fetch(t, now);
      expect(stats.total).toMatchObject({ received: 3, succeeded: 3 });
      expect(stats.tasks.map((s) => s.task)).toEqual(["a"]);
      expect(stats.notes).toEqual(notes);
    } finally {
      await t.close();
    }
  });
});
