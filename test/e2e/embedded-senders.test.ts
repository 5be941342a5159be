/**
 * Issue 6's acceptance run: two real `qworker worker` daemons and three sender processes (the library
 * client) share one SQLite file; 5000 tasks, each must run exactly once. Runs are counted from files the
 * task appends to, not from the broker under test.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { cleanEnv, qworker, script, waitFor, type Child } from "./embedded-procs.ts";

const TASKS = fileURLToPath(new URL("./embedded-tasks", import.meta.url));
const SENDER = fileURLToPath(new URL("./embedded-sender.ts", import.meta.url));
const TOTAL = 5000;
const SHARES = [1667, 1667, 1666];

const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-e2e-senders-"));
const outDir = path.join(dir, "out");
const url = `sqlite://${path.join(dir, "b.db")}`;
mkdirSync(outDir);
const children: Child[] = [];
let observer: Transport | undefined;

afterAll(async () => {
  await Promise.all(children.map((c) => c.kill()));
  await observer?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Every recorded run, by worker pid. */
function runs(): Map<string, string[]> {
  const byWorker = new Map<string, string[]>();
  let files: string[] = [];
  try {
    files = readdirSync(outDir).filter((f) => f.startsWith("done."));
  } catch {
    return byWorker;
  }
  for (const f of files) {
    const labels = readFileSync(path.join(outDir, f), "utf8").split("\n").filter(Boolean);
    byWorker.set(f, labels);
  }
  return byWorker;
}

const countRuns = () => [...runs().values()].reduce((n, l) => n + l.length, 0);

describe("embedded broker: two workers, three senders, one SQLite file", () => {
  it("runs 5000 tasks: 0 lost, 0 run twice", async () => {
    expect(SHARES.reduce((a, b) => a + b, 0)).toBe(TOTAL);
    observer = createSqliteTransport(url);
    await observer.connect();

    const env = cleanEnv({ QWORKER_E2E_OUT: outDir });
    const workers = [0, 1].map(() =>
      qworker(["worker", "--broker", url, "--tasks", TASKS, "--concurrency", "20", "--log-format", "json", "--loglevel", "warning"], { env }),
    );
    children.push(...workers);
    const failure = () => workers.map((w, i) => `worker ${i}: ${w.stderr().trim().slice(-2000)}`).join("\n");
    // Both are consuming once both heartbeats are in the broker (written by Worker.start before the fetch loop).
    await waitFor("both workers to register", 30_000, async () => {
      if (workers.some((w) => w.proc.exitCode !== null)) throw new Error(`a worker exited early:\n${failure()}`);
      return (await observer!.workers()).length === 2;
    });

    const senders = SHARES.map((n, i) => script(SENDER, [url, `s${i}`, String(n)]));
    children.push(...senders);
    const sent = await Promise.all(
      senders.map(async (s, i) => {
        const code = await s.exited;
        if (code !== 0) throw new Error(`sender ${i} exited ${code}: ${s.stderr().trim().slice(-2000)}`);
        return (JSON.parse(s.stdout().trim()) as { sent: number }).sent;
      }),
    );
    expect(sent).toEqual(SHARES);

    try {
      await waitFor(`${TOTAL} recorded runs`, 90_000, () => {
        if (workers.some((w) => w.proc.exitCode !== null)) throw new Error(`a worker exited:\n${failure()}`);
        return countRuns() >= TOTAL;
      }, 100);
    } catch (err) {
      const stats = JSON.stringify(await observer.stats(["default"]));
      throw new Error(`${(err as Error).message}; ${countRuns()} runs recorded; broker ${stats}\n${failure()}`);
    }
    // The queue is drained and nothing is left leased, delayed or dead.
    await waitFor("the broker to settle every task", 10_000, async () => {
      const [q] = await observer!.stats(["default"]);
      return q !== undefined && q.ready + q.active + q.delayed === 0;
    });
    expect(await observer.stats(["default"])).toEqual([{ name: "default", ready: 0, delayed: 0, active: 0, dead: 0 }]);

    // Warm shutdown: both exit 0, and no run is recorded after the count was reached.
    for (const w of workers) w.proc.kill("SIGTERM");
    expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0]);

    const byWorker = runs();
    const all = [...byWorker.values()].flat();
    const expected = SHARES.flatMap((n, s) => Array.from({ length: n }, (_, i) => `s${s}-${i}`));
    const seen = new Set(all);
    const lost = expected.filter((l) => !seen.has(l));
    const twice = all.length - seen.size;
    expect({ lost: lost.length, twice, runs: all.length }).toEqual({ lost: 0, twice: 0, runs: TOTAL });
    expect([...seen].sort()).toEqual([...expected].sort());
    // Both daemons took part (each consumed from the start, while the senders were still sending).
    expect(byWorker.size).toBe(2);
    for (const labels of byWorker.values()) expect(labels.length).toBeGreaterThan(0);
  }, 150_000);
});
