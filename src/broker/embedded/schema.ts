import type Database from "better-sqlite3";
import { BrokerError } from "../../errors.ts";

/**
 * The embedded broker's tables. One row per task in `tasks`, whatever its state:
 *   ready    waiting in its queue; ordered by priority DESC, then seq ASC (FIFO; released tasks get a
 *            negative seq so they go to the front)
 *   delayed  waiting for due_at; promoted to ready (with a fresh seq, i.e. to the back) once due
 *   active   leased to worker_id under token until lease_until
 * Settled tasks leave `tasks`; dead-lettered ones move to `dead`. All times are epoch ms.
 *
 * Bump SCHEMA_VERSION with any change and add a step to `migrate`; a file written by a newer qworker is
 * refused rather than misread.
 */
export const SCHEMA_VERSION = 4;

const DDL_V1 = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS tasks (
  id          TEXT PRIMARY KEY,
  queue       TEXT NOT NULL,
  priority    INTEGER NOT NULL,
  payload     TEXT NOT NULL,
  state       TEXT NOT NULL CHECK (state IN ('ready', 'delayed', 'active')),
  seq         INTEGER NOT NULL,
  due_at      INTEGER,
  deliveries  INTEGER NOT NULL DEFAULT 0,
  token       TEXT,
  worker_id   TEXT,
  lease_until INTEGER,
  started_at  INTEGER,
  unique_key  TEXT,
  enqueued_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_queue ON tasks (queue, state, priority DESC, seq);
CREATE INDEX IF NOT EXISTS tasks_by_due ON tasks (state, due_at);
CREATE INDEX IF NOT EXISTS tasks_by_lease ON tasks (state, lease_until);
CREATE INDEX IF NOT EXISTS tasks_by_worker ON tasks (worker_id) WHERE worker_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS dead (
  id         TEXT PRIMARY KEY,
  queue      TEXT NOT NULL,
  priority   INTEGER NOT NULL,
  payload    TEXT NOT NULL,
  reason     TEXT NOT NULL,
  error      TEXT,
  dead_at    INTEGER NOT NULL,
  deliveries INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_by_queue ON dead (queue, dead_at);
CREATE INDEX IF NOT EXISTS dead_by_time ON dead (dead_at);

CREATE TABLE IF NOT EXISTS results (
  id         TEXT PRIMARY KEY,
  value      TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_expiry ON results (expires_at);

CREATE TABLE IF NOT EXISTS revoked (
  id         TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_by_expiry ON revoked (expires_at);

-- Append-only log of revokes (v3 adds whether each was terminate=true); onRevoke listeners read past
-- their last seq.
CREATE TABLE IF NOT EXISTS terminations (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  id         TEXT NOT NULL,
  created_at INTEGER NOT NULL
);

-- A unique key held by task_id until it settles, or until expires_at when uniqueForMs was given.
CREATE TABLE IF NOT EXISTS uniques (
  key        TEXT PRIMARY KEY,
  task_id    TEXT NOT NULL,
  expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS uniques_by_task ON uniques (task_id);

CREATE TABLE IF NOT EXISTS workers (
  id         TEXT PRIMARY KEY,
  info       TEXT NOT NULL,
  last_beat  INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
`;

// v2: task events (capped by the writer) and per-minute task counters (dropped by recover after a day).
const DDL_V2 = `
CREATE TABLE IF NOT EXISTS events (
  seq  INTEGER PRIMARY KEY AUTOINCREMENT,
  data TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS counters (
  minute     INTEGER NOT NULL,
  key        TEXT NOT NULL,
  n          INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (minute, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_by_expiry ON counters (expires_at);
`;

// Every revoke is logged for the workers now, not only terminating ones (rows before v3 all were).
const DDL_V3 = `
ALTER TABLE terminations ADD COLUMN terminate INTEGER NOT NULL DEFAULT 1;
`;

// Every queue ever sent to, as Redis's <p>queues set: inspect and stats list a drained queue at 0 instead
// of forgetting it once its last task settles. Filled from the tasks and dead rows a v3 file holds.
const DDL_V4 = `
CREATE TABLE IF NOT EXISTS queues (name TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT OR IGNORE INTO queues (name) SELECT queue FROM tasks UNION SELECT queue FROM dead;
`;

/** Create or upgrade the schema; runs in one immediate transaction so concurrent openers serialize. */
export function migrate(db: Database.Database): void {
  db.transaction(() => {
    db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID");
    const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: number } | undefined;
    const current = row?.value ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new BrokerError(
        `SQLite broker file uses schema v${current}, newer than this qworker understands (v${SCHEMA_VERSION}); upgrade qworker`,
      );
    }
    if (current < 1) {
      db.exec(DDL_V1);
      db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('seq', 0)").run();
    }
    if (current < 2) db.exec(DDL_V2);
    if (current < 3) db.exec(DDL_V3);
    if (current < 4) db.exec(DDL_V4);
    db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value").run(
      SCHEMA_VERSION,
    );
  }).immediate();
}
