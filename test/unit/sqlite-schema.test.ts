import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { migrate, SCHEMA_VERSION } from "../../src/broker/embedded/schema.ts";

describe("embedded broker schema", () => {
  it("upgrades a v2 file: earlier revoke notices read as terminating ones, new ones carry their flag", () => {
    const db = new Database(":memory:");
    migrate(db);
    // Back to what a v2 file holds: its notices were written for terminate=true revokes only.
    db.exec("ALTER TABLE terminations DROP COLUMN terminate");
    db.prepare("UPDATE meta SET value = 2 WHERE key = 'schema_version'").run();
    db.prepare("INSERT INTO terminations (id, created_at) VALUES ('old', 1)").run();

    migrate(db);
    expect(db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get()).toBe(SCHEMA_VERSION);
    db.prepare("INSERT INTO terminations (id, created_at, terminate) VALUES ('new', 2, 0)").run();
    expect(db.prepare("SELECT id, terminate FROM terminations ORDER BY seq").all()).toEqual([
      { id: "old", terminate: 1 },
      { id: "new", terminate: 0 },
    ]);
    db.close();
  });

  it("upgrades a v3 file: the queues its tasks and dead-lettered tasks are in are remembered", () => {
    const db = new Database(":memory:");
    migrate(db);
    db.exec("DROP TABLE queues");
    db.prepare("UPDATE meta SET value = 3 WHERE key = 'schema_version'").run();
    db.prepare("INSERT INTO tasks (id, queue, priority, payload, state, seq, enqueued_at) VALUES ('a', 'emails', 0, '{}', 'ready', 1, 1)").run();
    db.prepare("INSERT INTO dead (id, queue, priority, payload, reason, dead_at, deliveries) VALUES ('b', 'reports', 0, '{}', 'failed', 1, 1)").run();

    migrate(db);
    expect(db.prepare("SELECT name FROM queues ORDER BY 1").pluck().all()).toEqual(["emails", "reports"]);
    db.close();
  });

  it("refuses a file written by a newer schema with a one-line reason", () => {
    const db = new Database(":memory:");
    migrate(db);
    db.prepare("UPDATE meta SET value = ? WHERE key = 'schema_version'").run(SCHEMA_VERSION + 1);
    expect(() => migrate(db)).toThrow(new RegExp(`schema v${SCHEMA_VERSION + 1}, newer than this qworker understands .*upgrade qworker`));
    db.close();
  });
});
