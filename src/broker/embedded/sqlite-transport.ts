import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, watch, type FSWatcher } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { BrokerError, QWorkerError } from "../../errors.ts";
import { decodeWorkerInfo } from "../worker-info.ts";
import type {
  ActiveTask,
  ActivityBatch,
  CounterRow,
  DeadLetterItem,
  DeadTask,
  EnqueueItem,
  EnqueueResult,
  LeaseRef,
  QueueCounts,
  RecoverOptions,
  RecoverReport,
  Reservation,
  ReserveRequest,
  RevokeListener,
  RetryItem,
  ScheduledTask,
  SettleItem,
  StoredEvent,
  TaskLocation,
  Transport,
  WorkerInfo,
} from "../transport.ts";
import { migrate } from "./schema.ts";
import type { SqliteLocation } from "./url.ts";
import { ChangeWatcher } from "./wait.ts";

/** A write lock held longer than this is waited for asynchronously (see SqliteTransportOptions.busyTimeoutMs). */
const SYNC_BUSY_MS = 2;
const MAX_BUSY_PAUSE_MS = 4;

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code === "SQLITE_BUSY" || code.startsWith("SQLITE_BUSY_"));
}

/**
 * The embedded broker: every queue lives in one SQLite file that any number of processes on the same host
 * open at once (WAL mode; each write is one short BEGIN IMMEDIATE transaction, one per batch call).
 * better-sqlite3 is synchronous, so a call blocks the event loop for the length of its transaction,
 * which is kept to a few indexed statements; waiting for another process's write lock does not (write()).
 *
 * Semantics worth knowing (the rest is the Transport contract):
 * - `deliveries` is counted when a task is reserved; `release` gives the delivery back, `retry` starts
 *   the count again (a retry is a new run, not a crash). On `recover`, a task whose lease lapsed after
 *   `maxDeliveries` deliveries is dead-lettered instead of put back.
 * - Tasks put back by `recover` or `release` go to the FRONT of their queue (they were first in line);
 *   promoted delayed tasks and requeued dead ones go to the back.
 * - `reserve` over several queues drains them in the order given (all of queues[0] first, …), priority
 *   and FIFO applying within each queue.
 * - Revoke: a queued (ready or delayed) task is settled at once; a task enqueued later under a revoked id
 *   is settled when `reserve` meets it. Either way it is deleted, its unique key freed, and unless a
 *   result exists the result `{"id":…,"state":"REVOKED","task":…,"queue":…,"finishedAt":…}` is stored
 *   for `resultTtlMs` (an option; the request's on reserve), as Redis does (the record Redis stores, see
 *   revokedResult), whatever the revoke's own TTL. Running tasks
 *   are left to their worker, which hears of every revoke through `onRevoke`. Revoking an id again keeps
 *   the later of the two expiries (as revoke.lua does), and `onRevoke` tells that one; `terminate` is told
 *   with each revoke as it was given (Redis also records it, to tell it again after a reconnect, for as
 *   long as the id's terminating revokes last, never beyond its revoke).
 * - Unique keys are freed whenever the holding task leaves the queue (settled, dead-lettered, revoked,
 *   purged), or when `uniqueForMs` runs out, whichever comes first.
 * - Enqueueing an id that is already queued or running is a no-op answered with `duplicate: true`.
 * - Non-positive TTLs (`resultTtlMs`, revoke `ttlMs`, `deadTtlMs`) mean "no expiry"; `deadMax` <= 0 means
 *   no bound. The dead-letter bounds (per queue) are applied by `recover`.
 */
export interface SqliteTransportOptions {
  /**
   * How long a write waits for another process's transaction before failing (default 5000 ms). Only the
   * first few milliseconds are waited inside SQLite (blocking); the rest asynchronously, so the event loop
   * keeps running while another process holds the write lock.
   */
  busyTimeoutMs?: number;
  /**
   * Watch the database directory for writes by other processes (inotify on Linux) to wake blocked calls
   * at once (default true). Without it, or where it fails, data_version is polled every `pollMs`.
   */
  watchFiles?: boolean;
  /** data_version poll period while a call waits, when files are not watched (default 15 ms). */
  pollMs?: number;
  /** Safety-net poll period while a call waits and files are watched (default 250 ms). */
  safetyPollMs?: number;
  /**
   * Open an existing database only: when the file is missing, connect() fails in one line naming its path
   * rather than creating an empty broker there (default false: it is created, with its directory).
   */
  mustExist?: boolean;
  /** Told the database's absolute path when connect() created it. */
  onCreate?: (file: string) => void;
  /**
   * TTL of the REVOKED result stored for a task revoked while it waits, and for one found revoked by a
   * reserve whose request names no TTL, in ms (<= 0: kept for ever; default one day). As on Redis: set from
   * result_expires, not from the revoke's TTL, so it lives as long as any other result.
   */
  resultTtlMs?: number;
}

interface TaskRow {
  id: string;
  queue: string;
  priority: number;
  payload: string;
  state: "ready" | "delayed" | "active";
  seq: number;
  due_at: number | null;
  deliveries: number;
  token: string | null;
  worker_id: string | null;
  lease_until: number | null;
  started_at: number | null;
  unique_key: string | null;
}

interface DeadRow {
  id: string;
  queue: string;
  priority: number;
  payload: string;
  reason: string;
  error: string | null;
  dead_at: number;
  deliveries: number;
}

const NEVER = Number.MAX_SAFE_INTEGER;
const PROMOTE_BATCH = 1000;
const RECOVER_BATCH = 1000;
/** Terminate notices older than this are pruned; listeners poll every few ms, so this is generous. */
const TERMINATION_KEEP_MS = 60 * 60 * 1000;
const DEFAULT_LIST_LIMIT = 100;
/** Default SqliteTransportOptions.resultTtlMs: one day, as result_expires' default and the Redis transport's. */
const DEFAULT_RESULT_TTL_MS = 86_400_000;

/**
 * Payloads up to this size are read for the task name of a revoked task's record; a larger one is not
 * parsed for it (the name is left out). The same bound as the Redis scripts (lua/lib/revoked_result.lua).
 */
const REVOKED_TASK_SCAN_BYTES = 65_536;

/**
 * The result stored for a task revoked while it waited: the same record as on Redis (revoke.lua and
 * reserve.lua): id, state, the task name when the message names one (see REVOKED_TASK_SCAN_BYTES),
 * queue and finishedAt. Transports treat payloads as opaque everywhere else; this reads one only for a
 * revoke, never on the per-task path.
 */
export function revokedResult(id: string, queue: string, payload: string, finishedAt: number): string {
  const task = taskNameOf(payload);
  return JSON.stringify({ id, state: "REVOKED", ...(task === undefined ? {} : { task }), queue, finishedAt });
}

function taskNameOf(payload: string): string | undefined {
  // Checked in bytes, as Redis counts them; a string longer in UTF-16 units is longer in bytes too.
  if (payload.length > REVOKED_TASK_SCAN_BYTES || Buffer.byteLength(payload) > REVOKED_TASK_SCAN_BYTES) return undefined;
  try {
    const task: unknown = (JSON.parse(payload) as { task?: unknown } | null)?.task;
    return typeof task === "string" ? task : undefined;
  } catch {
    return undefined;
  }
}

function expiry(now: number, ttlMs: number): number {
  return ttlMs > 0 ? now + ttlMs : NEVER;
}

function clampPriority(p: number): number {
  if (!Number.isFinite(p)) return 0;
  return Math.min(9, Math.max(0, Math.trunc(p)));
}

export class SqliteTransport implements Transport {
  readonly kind = "sqlite";
  readonly displayUrl: string;
  private readonly file: string;
  private readonly busyTimeoutMs: number;
  /** The part of busyTimeoutMs SQLite itself waits (blocking) before a write attempt reports SQLITE_BUSY. */
  private readonly syncBusyMs: number;
  private readonly pollMs: number;
  private readonly safetyPollMs: number;
  private readonly watchFiles: boolean;
  private readonly mustExist: boolean;
  private readonly onCreate: ((file: string) => void) | undefined;
  private readonly resultTtlMs: number;
  private fileWatcher: FSWatcher | undefined;
  private db: Database.Database | undefined;
  private watcher: ChangeWatcher | undefined;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly revokeListeners = new Set<RevokeListener>();
  private revokeCursor = 0;
  private unsubscribeRevokes: (() => void) | undefined;
  private closed = false;

  constructor(location: SqliteLocation, opts: SqliteTransportOptions = {}) {
    this.file = location.path;
    this.displayUrl = location.displayUrl;
    this.busyTimeoutMs = Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000));
    this.syncBusyMs = Math.min(this.busyTimeoutMs, SYNC_BUSY_MS);
    this.pollMs = opts.pollMs ?? 15;
    this.safetyPollMs = opts.safetyPollMs ?? 250;
    this.watchFiles = opts.watchFiles ?? true;
    this.mustExist = opts.mustExist ?? false;
    this.onCreate = opts.onCreate;
    this.resultTtlMs = opts.resultTtlMs ?? DEFAULT_RESULT_TTL_MS;
  }

  // ---------------------------------------------------------------- lifecycle

  async connect(): Promise<void> {
    if (this.db) return;
    if (this.closed) throw new BrokerError(`SQLite broker ${this.displayUrl} is closed; create a new transport`);
    const existed = existsSync(this.file);
    if (this.mustExist && !existed) throw this.missing();
    let db: Database.Database | undefined;
    try {
      if (!this.mustExist) mkdirSync(path.dirname(this.file), { recursive: true });
      // Opening and migrating wait for the lock the whole busyTimeoutMs, blocking: it happens once.
      // fileMustExist too, so a file deleted since the check above is not created after all.
      db = new Database(this.file, { timeout: this.busyTimeoutMs, fileMustExist: this.mustExist });
      const mode = db.pragma("journal_mode = WAL", { simple: true });
      if (String(mode).toLowerCase() !== "wal") throw new Error(`could not switch to WAL mode (got ${String(mode)})`);
      db.pragma("synchronous = NORMAL");
      migrate(db);
      db.pragma(`busy_timeout = ${this.syncBusyMs}`);
    } catch (err) {
      db?.close();
      if (err instanceof QWorkerError) throw err;
      if (this.mustExist && !existsSync(this.file)) throw this.missing();
      throw new BrokerError(`cannot open SQLite broker at ${this.file}: ${oneLine(err)}`, { cause: err });
    }
    this.db = db;
    if (!existed) this.onCreate?.(this.file);
    const versionStmt = db.prepare("PRAGMA data_version").pluck();
    const watcher = new ChangeWatcher({ readVersion: () => versionStmt.get() as number, pollMs: this.pollMs });
    this.watcher = watcher;
    if (this.watchFiles) this.startFileWatch(watcher);
  }

  /**
   * The default URL (sqlite://.qworker/broker.db) is relative, so a command run from another directory
   * looks for a broker that is not there: say where it looked and how to point it at the real one.
   */
  private missing(): BrokerError {
    return new BrokerError(
      `no embedded broker at ${this.file}: run this command in your project's directory (a relative sqlite:// path, like the default, starts from the current one), or set broker_url / QWORKER_BROKER_URL`,
    );
  }

  /** Poke the watcher whenever the database or its WAL is written; fall back to fast polling if we can't. */
  private startFileWatch(watcher: ChangeWatcher): void {
    const base = path.basename(this.file);
    try {
      const fw = watch(path.dirname(this.file), { persistent: false }, (_event, name) => {
        if (name === null || name === undefined || String(name).startsWith(base)) watcher.poke();
      });
      fw.on("error", () => {
        fw.close();
        if (this.fileWatcher === fw) this.fileWatcher = undefined;
        watcher.setPollMs(this.pollMs);
      });
      this.fileWatcher = fw;
      watcher.setPollMs(this.safetyPollMs);
    } catch {
      watcher.setPollMs(this.pollMs);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribeRevokes?.();
    this.revokeListeners.clear();
    this.fileWatcher?.close();
    this.fileWatcher = undefined;
    this.watcher?.close();
    this.statements.clear();
    const db = this.db;
    this.db = undefined;
    db?.close();
  }

  // ---------------------------------------------------------------- plumbing

  private conn(): Database.Database {
    if (!this.db) {
      throw new BrokerError(
        this.closed ? `SQLite broker ${this.displayUrl} is closed` : `SQLite broker ${this.displayUrl} is not connected; call connect() first`,
      );
    }
    return this.db;
  }

  private sql(text: string): Database.Statement {
    let stmt = this.statements.get(text);
    if (!stmt) {
      stmt = this.conn().prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  }

  /** One BEGIN IMMEDIATE transaction; `now` is read after the write lock is taken. */
  private async write<T>(fn: (now: number) => T): Promise<T> {
    const db = this.conn();
    const deadline = Date.now() + this.busyTimeoutMs;
    for (let pause = 1; ; pause = Math.min(pause * 2, MAX_BUSY_PAUSE_MS)) {
      let ran = false;
      try {
        return db.transaction(() => {
          ran = true;
          return fn(Date.now());
        }).immediate();
      } catch (err) {
        // Another process holds the write lock (BEGIN IMMEDIATE failed, so fn never ran): wait for it
        // here, off the event loop, rather than inside SQLite, which would block this process meanwhile.
        if (ran || !isBusy(err) || Date.now() >= deadline) throw this.wrap(err);
        await new Promise((r) => setTimeout(r, pause));
      }
    }
  }

  /** Reads in one snapshot (a deferred transaction). */
  private read<T>(fn: (now: number) => T): T {
    const db = this.conn();
    try {
      return db.transaction(() => fn(Date.now())).deferred();
    } catch (err) {
      throw this.wrap(err);
    }
  }

  private wrap(err: unknown): Error {
    if (err instanceof QWorkerError) return err;
    return new BrokerError(`SQLite broker ${this.displayUrl}: ${oneLine(err)}`, { cause: err });
  }

  private notify(): void {
    this.watcher?.notify();
  }

  /** Reserve `n` consecutive sequence numbers; returns the first. */
  private nextSeq(n: number): number {
    const hi = this.sql("UPDATE meta SET value = value + ? WHERE key = 'seq' RETURNING value").pluck().get(n) as number;
    return hi - n + 1;
  }

  /** Sequence numbers that sort before everything queued so far (for putting tasks back at the front). */
  private frontSeqs(n: number): number[] {
    const first = this.nextSeq(n);
    // The first item gets the most negative number, so a batch keeps its order at the front.
    return Array.from({ length: n }, (_, i) => -(first + n - 1 - i));
  }

  private getTask(id: string): TaskRow | undefined {
    return this.sql("SELECT * FROM tasks WHERE id = ?").get(id) as TaskRow | undefined;
  }

  /** The task if `token` is its current lease token. */
  private leased(id: string, token: string): TaskRow | undefined {
    const row = this.getTask(id);
    return row && row.state === "active" && row.token === token ? row : undefined;
  }

  private freeUnique(taskId: string): void {
    this.sql("DELETE FROM uniques WHERE task_id = ?").run(taskId);
  }

  private removeTask(row: TaskRow): void {
    this.sql("DELETE FROM tasks WHERE id = ?").run(row.id);
    this.freeUnique(row.id);
  }

  private toDead(row: TaskRow, reason: string, error: string | undefined, now: number): void {
    this.removeTask(row);
    this.sql(
      `INSERT OR REPLACE INTO dead (id, queue, priority, payload, reason, error, dead_at, deliveries)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(row.id, row.queue, row.priority, row.payload, reason, error ?? null, now, row.deliveries);
  }

  private putResult(id: string, value: string, expiresAt: number): void {
    this.sql(
      "INSERT INTO results (id, value, expires_at) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
    ).run(id, value, expiresAt);
  }

  private revokedUntil(id: string, now: number): number | undefined {
    return this.sql("SELECT expires_at FROM revoked WHERE id = ? AND expires_at > ?").pluck().get(id, now) as number | undefined;
  }

  private settleRevoked(row: TaskRow, resultTtlMs: number, now: number): void {
    this.removeTask(row);
    const existing = this.sql("SELECT 1 FROM results WHERE id = ? AND expires_at > ?").pluck().get(row.id, now);
    if (existing === undefined) this.putResult(row.id, revokedResult(row.id, row.queue, row.payload, now), expiry(now, resultTtlMs));
  }

  private promoteDue(now: number, limit: number): number {
    const ids = this.sql("SELECT id FROM tasks WHERE state = 'delayed' AND due_at <= ? ORDER BY due_at, seq LIMIT ?")
      .pluck()
      .all(now, limit) as string[];
    if (ids.length === 0) return 0;
    let seq = this.nextSeq(ids.length);
    const promote = this.sql("UPDATE tasks SET state = 'ready', seq = ?, due_at = NULL WHERE id = ?");
    for (const id of ids) promote.run(seq++, id);
    return ids.length;
  }

  // ---------------------------------------------------------------- producing

  async enqueue(items: EnqueueItem[]): Promise<EnqueueResult[]> {
    if (items.length === 0) return [];
    const out = await this.write((now) => {
      const results: EnqueueResult[] = [];
      const stored = new Set<string>();
      let seq = this.nextSeq(items.length);
      for (const item of items) {
        const mySeq = seq++;
        if (item.uniqueKey !== undefined) {
          const holder = this.sql(
            `SELECT u.task_id FROM uniques u JOIN tasks t ON t.id = u.task_id
             WHERE u.key = ? AND (u.expires_at IS NULL OR u.expires_at > ?)`,
          )
            .pluck()
            .get(item.uniqueKey, now) as string | undefined;
          if (holder !== undefined) {
            results.push({ id: holder, duplicate: true });
            continue;
          }
        }
        if (this.getTask(item.id)) {
          results.push({ id: item.id, duplicate: true });
          continue;
        }
        // A dead-lettered task of this id is neither queued nor running: this send queues it afresh, and it
        // leaves the dead-letter list (as on Redis).
        this.sql("DELETE FROM dead WHERE id = ?").run(item.id);
        // An earlier run's result (a dead-lettered failure, an old success) would answer a waiter at once.
        this.sql("DELETE FROM results WHERE id = ?").run(item.id);
        const delayed = item.dueAt !== undefined && item.dueAt > now;
        this.sql(
          `INSERT INTO tasks (id, queue, priority, payload, state, seq, due_at, unique_key, enqueued_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        ).run(
          item.id,
          item.queue,
          clampPriority(item.priority),
          item.payload,
          delayed ? "delayed" : "ready",
          mySeq,
          delayed ? item.dueAt : null,
          item.uniqueKey ?? null,
          now,
        );
        if (item.uniqueKey !== undefined) {
          const until = item.uniqueForMs !== undefined && item.uniqueForMs > 0 ? now + item.uniqueForMs : null;
          this.sql(
            "INSERT INTO uniques (key, task_id, expires_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET task_id = excluded.task_id, expires_at = excluded.expires_at",
          ).run(item.uniqueKey, item.id, until);
        }
        results.push({ id: item.id, duplicate: false });
        stored.add(item.queue);
      }
      // Once per queue a task of the batch was stored in (a bulk send is nearly always to one); a queue
      // that only got duplicates is not listed, as on Redis.
      const remember = this.sql("INSERT OR IGNORE INTO queues (name) VALUES (?)");
      for (const q of stored) remember.run(q);
      return results;
    });
    this.notify();
    return out;
  }

  // ---------------------------------------------------------------- consuming

  async reserve(req: ReserveRequest): Promise<Reservation[]> {
    if (req.max <= 0 || req.queues.length === 0) return [];
    const deadline = Date.now() + Math.max(0, req.waitMs);
    for (;;) {
      const watcher = this.watcher;
      if (!watcher || this.closed) return [];
      const since = watcher.snapshot();
      const got = await this.tryReserve(req);
      if (got.length > 0 || req.waitMs <= 0) return got;
      const now = Date.now();
      if (now >= deadline) return [];
      const nextDue = this.read(() => this.sql("SELECT min(due_at) FROM tasks WHERE state = 'delayed'").pluck().get() as number | null);
      await watcher.wait(nextDue === null ? deadline : Math.min(deadline, nextDue), since);
    }
  }

  /** Cheap read first, so an idle poll never takes the write lock. */
  private hasWork(queues: string[], now: number): boolean {
    return this.read(() => {
      const ready = this.sql("SELECT 1 FROM tasks WHERE queue = ? AND state = 'ready' LIMIT 1").pluck();
      if (queues.some((q) => ready.get(q) !== undefined)) return true;
      const due = this.sql("SELECT min(due_at) FROM tasks WHERE state = 'delayed'").pluck().get() as number | null;
      return due !== null && due <= now;
    });
  }

  private async tryReserve(req: ReserveRequest): Promise<Reservation[]> {
    if (!this.hasWork(req.queues, Date.now())) return [];
    return await this.write((now) => {
      this.promoteDue(now, PROMOTE_BATCH);
      const out: Reservation[] = [];
      const pick = this.sql("SELECT * FROM tasks WHERE queue = ? AND state = 'ready' ORDER BY priority DESC, seq LIMIT ?");
      const lease = this.sql(
        `UPDATE tasks SET state = 'active', token = ?, worker_id = ?, lease_until = ?, started_at = ?, deliveries = deliveries + 1
         WHERE id = ?`,
      );
      const leaseUntil = now + req.leaseMs;
      for (const queue of req.queues) {
        while (out.length < req.max) {
          const rows = pick.all(queue, req.max - out.length) as TaskRow[];
          if (rows.length === 0) break;
          for (const row of rows) {
            if (this.revokedUntil(row.id, now) !== undefined) {
              this.settleRevoked(row, req.resultTtlMs ?? this.resultTtlMs, now);
              continue;
            }
            const token = randomUUID();
            lease.run(token, req.workerId, leaseUntil, now, row.id);
            out.push({ id: row.id, queue: row.queue, payload: row.payload, token, deliveries: row.deliveries + 1, leaseUntil });
          }
        }
      }
      return out;
    });
  }

  async settle(items: SettleItem[]): Promise<string[]> {
    if (items.length === 0) return [];
    let stored = false;
    const ok = await this.write((now) => {
      const valid: string[] = [];
      // The usual outcome: one statement checks the lease and deletes the task, without reading the row.
      const done = this.sql("DELETE FROM tasks WHERE id = ? AND state = 'active' AND token = ? RETURNING unique_key");
      for (const item of items) {
        if (item.deadReason !== undefined) {
          const row = this.leased(item.id, item.token);
          if (!row) continue;
          this.toDead(row, item.deadReason, item.deadError, now);
        } else {
          const gone = done.get(item.id, item.token) as { unique_key: string | null } | undefined;
          if (!gone) continue;
          // enqueue writes a uniques row exactly when it sets the task's unique_key.
          if (gone.unique_key !== null) this.freeUnique(item.id);
        }
        if (item.result !== undefined) {
          this.putResult(item.id, item.result, expiry(now, item.resultTtlMs));
          stored = true;
        }
        valid.push(item.id);
      }
      return valid;
    });
    if (stored) this.notify();
    return ok;
  }

  async retry(item: RetryItem): Promise<boolean> {
    const ok = await this.write((now) => {
      if (!this.leased(item.id, item.token)) return false;
      const delayed = item.dueAt > now;
      this.sql(
        `UPDATE tasks SET queue = ?, priority = ?, payload = ?, state = ?, seq = ?, due_at = ?, deliveries = 0,
           token = NULL, worker_id = NULL, lease_until = NULL, started_at = NULL
         WHERE id = ?`,
      ).run(item.queue, clampPriority(item.priority), item.payload, delayed ? "delayed" : "ready", this.nextSeq(1), delayed ? item.dueAt : null, item.id);
      return true;
    });
    if (ok) this.notify();
    return ok;
  }

  async release(items: LeaseRef[]): Promise<void> {
    if (items.length === 0) return;
    const n = await this.write(() => {
      const rows = items.map((it) => this.leased(it.id, it.token)).filter((r): r is TaskRow => r !== undefined);
      if (rows.length === 0) return 0;
      const seqs = this.frontSeqs(rows.length);
      const put = this.sql(
        `UPDATE tasks SET state = 'ready', seq = ?, deliveries = max(deliveries - 1, 0),
           token = NULL, worker_id = NULL, lease_until = NULL, started_at = NULL
         WHERE id = ?`,
      );
      rows.forEach((row, i) => put.run(seqs[i], row.id));
      return rows.length;
    });
    if (n > 0) this.notify();
  }

  async deadLetter(items: DeadLetterItem[]): Promise<void> {
    if (items.length === 0) return;
    await this.write((now) => {
      for (const item of items) {
        const row = this.leased(item.id, item.token);
        if (row) this.toDead(row, item.reason, item.error, now);
      }
    });
  }

  async extendLeases(items: LeaseRef[], leaseMs: number): Promise<string[]> {
    if (items.length === 0) return [];
    return await this.write((now) => {
      const lost: string[] = [];
      const extend = this.sql("UPDATE tasks SET lease_until = ? WHERE id = ?");
      for (const item of items) {
        if (this.leased(item.id, item.token)) extend.run(now + leaseMs, item.id);
        else lost.push(item.id);
      }
      return lost;
    });
  }

  async extendWorkerLeases(workerId: string, leaseMs: number): Promise<string[]> {
    return await this.write((now) =>
      this.sql("UPDATE tasks SET lease_until = ? WHERE worker_id = ? AND state = 'active' RETURNING id")
        .pluck()
        .all(now + leaseMs, workerId) as string[],
    );
  }

  /**
   * Whether heartbeats can be judged now (inside a write transaction). After a gap in the recovery sweeps,
   * which every live worker runs each second, every heartbeat is as old as the gap (the machine slept, or
   * every worker was stopped): for one heartbeat TTL after it, none is, so live workers beat again before
   * a peer takes their tasks. The gap that counts is half the TTL, at most 3 s, as in recover.lua.
   */
  private heartbeatsJudgeable(now: number, ttlMs: number): boolean {
    const get = this.sql("SELECT value FROM meta WHERE key = ?").pluck();
    const set = this.sql("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
    const last = get.get("recover_last") as number | undefined;
    set.run("recover_last", now);
    if (last !== undefined && now - last > Math.min(3000, ttlMs / 2)) set.run("recover_gap_ended", now);
    return now - ((get.get("recover_gap_ended") as number | undefined) ?? 0) >= ttlMs;
  }

  async recover(opts: RecoverOptions): Promise<RecoverReport> {
    const report = await this.write((now) => {
      const promoted = this.promoteDue(now, PROMOTE_BATCH * 5);

      const staleBefore = now - opts.heartbeatTtlMs;
      const deadWorkers = this.heartbeatsJudgeable(now, opts.heartbeatTtlMs)
        ? (this.sql("SELECT id FROM workers WHERE last_beat < ?").pluck().all(staleBefore) as string[])
        : [];
      const candidates = new Map<string, TaskRow>();
      for (const row of this.sql("SELECT * FROM tasks WHERE state = 'active' AND lease_until <= ? ORDER BY lease_until LIMIT ?").all(
        now,
        RECOVER_BATCH,
      ) as TaskRow[]) {
        candidates.set(row.id, row);
      }
      const byWorker = this.sql("SELECT * FROM tasks WHERE worker_id = ? AND state = 'active'");
      for (const worker of deadWorkers) {
        for (const row of byWorker.all(worker) as TaskRow[]) candidates.set(row.id, row);
      }
      for (const worker of deadWorkers) this.sql("DELETE FROM workers WHERE id = ?").run(worker);

      let recovered = 0;
      let deadLettered = 0;
      const back: TaskRow[] = [];
      for (const row of candidates.values()) {
        if (row.deliveries >= opts.maxDeliveries) {
          const why = row.lease_until !== null && row.lease_until <= now ? "lease expired" : `worker ${row.worker_id ?? "?"} died`;
          this.toDead(row, `delivered ${row.deliveries} times without finishing (maxDeliveries ${opts.maxDeliveries}; ${why})`, undefined, now);
          deadLettered++;
        } else {
          back.push(row);
        }
      }
      if (back.length > 0) {
        const seqs = this.frontSeqs(back.length);
        const put = this.sql(
          `UPDATE tasks SET state = 'ready', seq = ?, token = NULL, worker_id = NULL, lease_until = NULL, started_at = NULL
           WHERE id = ?`,
        );
        back.forEach((row, i) => put.run(seqs[i], row.id));
        recovered = back.length;
      }

      this.housekeep(now, opts);
      return { promoted, recovered, deadLettered };
    });
    if (report.promoted + report.recovered > 0) this.notify();
    return report;
  }

  /** Expired results, revokes, unique keys and revoke notices; dead-letter bounds per queue. */
  private housekeep(now: number, opts: RecoverOptions): void {
    this.sql("DELETE FROM results WHERE expires_at <= ?").run(now);
    this.sql("DELETE FROM revoked WHERE expires_at <= ?").run(now);
    this.sql("DELETE FROM uniques WHERE expires_at IS NOT NULL AND expires_at <= ?").run(now);
    this.sql("DELETE FROM terminations WHERE created_at < ?").run(now - TERMINATION_KEEP_MS);
    this.sql("DELETE FROM counters WHERE expires_at <= ?").run(now);
    if (opts.deadTtlMs > 0) this.sql("DELETE FROM dead WHERE dead_at < ?").run(now - opts.deadTtlMs);
    if (opts.deadMax > 0) {
      const over = this.sql("SELECT queue FROM dead GROUP BY queue HAVING count(*) > ?").pluck().all(opts.deadMax) as string[];
      const trim = this.sql(
        `DELETE FROM dead WHERE queue = ? AND id NOT IN
           (SELECT id FROM dead WHERE queue = ? ORDER BY dead_at DESC, rowid DESC LIMIT ?)`,
      );
      for (const queue of over) trim.run(queue, queue, opts.deadMax);
    }
  }

  // ---------------------------------------------------------------- workers

  async heartbeat(info: WorkerInfo, ttlMs: number): Promise<void> {
    await this.write((now) => {
      this.sql(
        `INSERT INTO workers (id, info, last_beat, expires_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(id) DO UPDATE SET info = excluded.info, last_beat = excluded.last_beat, expires_at = excluded.expires_at`,
      ).run(info.id, JSON.stringify(info), now, expiry(now, ttlMs));
    });
  }

  async removeWorker(workerId: string): Promise<void> {
    await this.write(() => {
      this.sql("DELETE FROM workers WHERE id = ?").run(workerId);
    });
  }

  async workers(): Promise<WorkerInfo[]> {
    const rows = this.read(
      (now) => this.sql("SELECT info, last_beat FROM workers WHERE expires_at > ? ORDER BY id").all(now) as { info: string; last_beat: number }[],
    );
    // A row that is not a worker record (written by another program, or broken) is left out, as on Redis.
    return rows.flatMap((r) => decodeWorkerInfo(r.info, r.last_beat) ?? []);
  }

  // ---------------------------------------------------------------- inspection

  async stats(queues?: string[]): Promise<QueueCounts[]> {
    return this.read(() => {
      // An empty list means "every queue", like no list at all.
      const names =
        queues && queues.length > 0
          ? queues
          : (this.sql("SELECT name FROM queues ORDER BY 1").pluck().all() as string[]);
      const byState = this.sql("SELECT state, count(*) AS n FROM tasks WHERE queue = ? GROUP BY state");
      const dead = this.sql("SELECT count(*) FROM dead WHERE queue = ?").pluck();
      return names.map((name) => {
        const counts: QueueCounts = { name, ready: 0, delayed: 0, active: 0, dead: dead.get(name) as number };
        for (const r of byState.all(name) as { state: TaskRow["state"]; n: number }[]) {
          if (r.state === "ready") counts.ready = r.n;
          else if (r.state === "delayed") counts.delayed = r.n;
          else counts.active = r.n;
        }
        return counts;
      });
    });
  }

  async listDead(queue?: string, limit: number = DEFAULT_LIST_LIMIT): Promise<DeadTask[]> {
    const rows = this.read(() =>
      queue === undefined
        ? (this.sql("SELECT * FROM dead ORDER BY dead_at DESC, rowid DESC LIMIT ?").all(limit) as DeadRow[])
        : (this.sql("SELECT * FROM dead WHERE queue = ? ORDER BY dead_at DESC, rowid DESC LIMIT ?").all(queue, limit) as DeadRow[]),
    );
    return rows.map((r) => {
      const task: DeadTask = { id: r.id, queue: r.queue, payload: r.payload, reason: r.reason, deadAt: r.dead_at, deliveries: r.deliveries };
      if (r.error !== null) task.error = r.error;
      return task;
    });
  }

  async requeueDead(ids: string[] | "all", queue?: string): Promise<number> {
    const n = await this.write((now) => {
      let rows: DeadRow[];
      if (ids === "all") {
        rows =
          queue === undefined
            ? (this.sql("SELECT * FROM dead ORDER BY dead_at, rowid").all() as DeadRow[])
            : (this.sql("SELECT * FROM dead WHERE queue = ? ORDER BY dead_at, rowid").all(queue) as DeadRow[]);
      } else {
        const one = this.sql("SELECT * FROM dead WHERE id = ?");
        rows = ids.map((id) => one.get(id) as DeadRow | undefined).filter((r): r is DeadRow => r !== undefined && (queue === undefined || r.queue === queue));
      }
      let count = 0;
      for (const r of rows) {
        this.sql("DELETE FROM dead WHERE id = ?").run(r.id);
        if (this.getTask(r.id)) continue; // the same id was enqueued again meanwhile: that copy will run
        this.sql(
          `INSERT INTO tasks (id, queue, priority, payload, state, seq, enqueued_at) VALUES (?, ?, ?, ?, 'ready', ?, ?)`,
        ).run(r.id, r.queue, r.priority, r.payload, this.nextSeq(1), now);
        this.sql("DELETE FROM results WHERE id = ?").run(r.id);
        count++;
      }
      return count;
    });
    if (n > 0) this.notify();
    return n;
  }

  async listActive(limit: number = DEFAULT_LIST_LIMIT): Promise<ActiveTask[]> {
    const rows = this.read(
      () => this.sql("SELECT * FROM tasks WHERE state = 'active' ORDER BY started_at, id LIMIT ?").all(limit) as TaskRow[],
    );
    return rows.map((r) => ({
      id: r.id,
      queue: r.queue,
      payload: r.payload,
      workerId: r.worker_id ?? "",
      leaseUntil: r.lease_until ?? 0,
      startedAt: r.started_at ?? 0,
      deliveries: r.deliveries,
    }));
  }

  async listScheduled(limit: number = DEFAULT_LIST_LIMIT): Promise<ScheduledTask[]> {
    const rows = this.read(
      () => this.sql("SELECT * FROM tasks WHERE state = 'delayed' ORDER BY due_at, seq LIMIT ?").all(limit) as TaskRow[],
    );
    return rows.map((r) => ({ id: r.id, queue: r.queue, payload: r.payload, dueAt: r.due_at ?? 0 }));
  }

  async purge(queue: string, opts: { dead: boolean }): Promise<number> {
    return await this.write(() => {
      this.sql(
        "DELETE FROM uniques WHERE task_id IN (SELECT id FROM tasks WHERE queue = ? AND state IN ('ready', 'delayed'))",
      ).run(queue);
      let n = this.sql("DELETE FROM tasks WHERE queue = ? AND state IN ('ready', 'delayed')").run(queue).changes;
      if (opts.dead) n += this.sql("DELETE FROM dead WHERE queue = ?").run(queue).changes;
      return n;
    });
  }

  // ---------------------------------------------------------------- results

  async getResult(id: string): Promise<string | null> {
    return this.read((now) => (this.sql("SELECT value FROM results WHERE id = ? AND expires_at > ?").pluck().get(id, now) as string | undefined) ?? null);
  }

  async waitForResult(id: string, timeoutMs: number): Promise<string | null> {
    const deadline = Date.now() + Math.max(0, timeoutMs);
    for (;;) {
      const watcher = this.watcher;
      // Closed (also while waiting: close() wakes the watcher) or never connected: conn() says which.
      if (!watcher || this.closed) {
        this.conn();
        return null;
      }
      const since = watcher.snapshot();
      const value = await this.getResult(id);
      if (value !== null) return value;
      if (Date.now() >= deadline) return null;
      await watcher.wait(deadline, since);
    }
  }

  // ---------------------------------------------------------------- observability

  async describeTask(id: string): Promise<TaskLocation | null> {
    return this.read(() => {
      const row = this.getTask(id);
      if (row) {
        const base = { id, queue: row.queue, payload: row.payload, deliveries: row.deliveries };
        if (row.state === "active") return { ...base, state: "active", workerId: row.worker_id ?? "", startedAt: row.started_at ?? 0 };
        if (row.state === "delayed") return { ...base, state: "delayed", dueAt: row.due_at ?? 0 };
        return { ...base, state: "ready" };
      }
      const dead = this.sql("SELECT * FROM dead WHERE id = ?").get(id) as DeadRow | undefined;
      return dead ? { id, queue: dead.queue, payload: dead.payload, deliveries: dead.deliveries, state: "dead", reason: dead.reason } : null;
    });
  }

  async publishActivity(batch: ActivityBatch): Promise<void> {
    if (batch.events.count === 0 && batch.counters.length === 0) return;
    const text = batch.events.count > 0 ? batch.events.data.toString("utf8") : "";
    await this.write(() => {
      if (batch.events.count > 0) {
        // One row per flush, its events one JSON text per line (as one stream entry on Redis): a row per
        // event was about a tenth of an embedded worker's CPU in a drain. The cap counts rows, so it is
        // scaled by this batch's size to keep about eventsMaxLen events.
        const last = Number(this.sql("INSERT INTO events (data) VALUES (?)").run(text).lastInsertRowid);
        this.sql("DELETE FROM events WHERE seq <= ?").run(last - Math.max(1, Math.ceil(batch.eventsMaxLen / batch.events.count)));
      }
      // Added to only when it is an integer: SQLite's + reads a text as the number it starts with, if any
      // ('12abc' + 3 is 15), and a blob as the text it holds, so another program's value would count.
      // Such a value is replaced by this increment instead, as counters.lua sets a Redis minute aside.
      const bump = this.sql(
        `INSERT INTO counters (minute, key, n, expires_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(minute, key) DO UPDATE SET n = CASE WHEN typeof(n) = 'integer' THEN n + excluded.n ELSE excluded.n END`,
      );
      for (const c of batch.counters) bump.run(c.minute, c.key, c.n, c.minute * 60_000 + batch.countersTtlMs);
    });
  }

  async readEvents(limit: number): Promise<StoredEvent[]> {
    // Newest rows first until `limit` events; a row holds one flush's events, one per line (rows written
    // before that held one event each, which reads the same).
    const out: StoredEvent[] = [];
    const rows = this.sql("SELECT seq, data FROM events WHERE seq < ? ORDER BY seq DESC LIMIT 50");
    let before = Number.MAX_SAFE_INTEGER;
    while (out.length < limit) {
      const page = this.read(() => rows.all(before) as { seq: number; data: string }[]);
      for (const r of page) {
        const events = r.data.split("\n").map((data, i) => ({ id: `${r.seq}#${i}`, data }));
        out.unshift(...events.slice(Math.max(0, events.length - (limit - out.length))));
        if (out.length >= limit) break;
      }
      if (page.length < 50) break;
      before = page[page.length - 1]!.seq;
    }
    return out;
  }

  async readCounters(sinceMinute: number, leftOut: (line: string) => void = () => {}): Promise<CounterRow[]> {
    // The column's INTEGER affinity converts only what reads as a number: a text such as '5 tasks', a real
    // or a blob stored by another program stays as it is, and would reach the caller as a string, a
    // fraction or a Buffer typed as a number. Only integers are counters (qworker writes nothing else).
    const all = this.read(
      () => this.sql("SELECT minute, key, n, typeof(n) AS type FROM counters WHERE minute >= ? ORDER BY minute, key").all(sinceMinute) as (CounterRow & { type: string })[],
    );
    const rows: CounterRow[] = [];
    const bad: string[] = [];
    for (const { minute, key, n, type } of all) {
      if (type === "integer") rows.push({ minute, key, n });
      else bad.push(`${new Date(minute * 60_000).toISOString().slice(0, 16)} UTC "${key}" = ${shownValue(n as unknown)}`);
    }
    if (bad.length > 0) {
      leftOut(
        `${bad.length === 1 ? "a counter" : `${bad.length} counters`} in ${this.displayUrl} ${bad.length === 1 ? "is" : "are"} no integer, not shown: ${bad.slice(0, 3).join(", ")}${bad.length > 3 ? ", ..." : ""} (another program's data; DELETE FROM counters WHERE typeof(n) <> 'integer')`,
      );
    }
    return rows;
  }

  // ---------------------------------------------------------------- revoke

  async revoke(ids: string[], ttlMs: number, terminate: boolean): Promise<void> {
    if (ids.length === 0) return;
    await this.write((now) => {
      const until = expiry(now, ttlMs);
      for (const id of ids) {
        this.sql(
          "INSERT INTO revoked (id, expires_at) VALUES (?, ?) ON CONFLICT(id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)",
        ).run(id, until);
        this.sql("INSERT INTO terminations (id, created_at, terminate) VALUES (?, ?, ?)").run(id, now, terminate ? 1 : 0);
        const row = this.getTask(id);
        if (row && row.state !== "active") this.settleRevoked(row, this.resultTtlMs, now);
      }
    });
    this.notify();
  }

  async onRevoke(listener: RevokeListener): Promise<() => void> {
    const watcher = this.watcher;
    if (!watcher) throw this.wrap(new Error("not connected; call connect() first"));
    if (this.revokeListeners.size === 0) {
      this.revokeCursor = this.read(() => (this.sql("SELECT max(seq) FROM terminations").pluck().get() as number | null) ?? 0);
      this.unsubscribeRevokes = watcher.subscribe(() => this.pollRevokes());
    }
    this.revokeListeners.add(listener);
    return () => {
      this.revokeListeners.delete(listener);
      if (this.revokeListeners.size === 0) {
        this.unsubscribeRevokes?.();
        this.unsubscribeRevokes = undefined;
      }
    };
  }

  private pollRevokes(): void {
    if (this.closed || this.revokeListeners.size === 0) return;
    let rows: { seq: number; id: string; terminate: number; expires_at: number | null }[];
    try {
      // With each revoke, how long it lasts: a worker that remembers revokes must not outlast the broker.
      rows = this.read(
        () =>
          this.sql(
            "SELECT t.seq, t.id, t.terminate, r.expires_at FROM terminations t LEFT JOIN revoked r ON r.id = t.id WHERE t.seq > ? ORDER BY t.seq",
          ).all(this.revokeCursor) as { seq: number; id: string; terminate: number; expires_at: number | null }[],
      );
    } catch {
      return; // transient (busy) or closing: the next change tries again
    }
    if (rows.length === 0) return;
    this.revokeCursor = rows[rows.length - 1]!.seq;
    const now = Date.now();
    // One call per (terminate, TTL), as the Redis transport hears one per revoke call. A revoke whose row
    // is gone has expired (a TTL of 1 ms: forget it at once); one that lasts for ever has no TTL.
    const groups = new Map<string, { ids: Set<string>; terminate: boolean; ttlMs: number | undefined }>();
    for (const r of rows) {
      const ttlMs = r.expires_at === null ? 1 : r.expires_at >= NEVER ? undefined : Math.max(1, r.expires_at - now);
      const key = `${r.terminate}:${ttlMs ?? ""}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { ids: new Set(), terminate: r.terminate !== 0, ttlMs }));
      g.ids.add(r.id);
    }
    for (const listener of [...this.revokeListeners]) {
      for (const g of groups.values()) {
        try {
          listener([...g.ids], g.terminate, g.ttlMs);
        } catch {
          // a listener's failure must not stop the others
        }
      }
    }
  }
}

function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s+/g, " ").trim();
}

/** A counter value that is no integer, as a note shows it: a text quoted and cut short, a blob by its size. */
function shownValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (Buffer.isBuffer(v)) return `a blob of ${v.length} byte${v.length === 1 ? "" : "s"}`;
  return String(v);
}
