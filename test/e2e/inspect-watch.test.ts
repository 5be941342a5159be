/**
 * `qworker inspect --watch` with stdin that is not a terminal (CI, nohup, `</dev/null`, a pipe): it keeps
 * refreshing until SIGINT or SIGTERM and then exits 0, on both brokers. The children's stdin is /dev/null
 * (spawnCli's "ignore"), so no raw-mode key reader keeps the process alive; only the refresh timer does.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRedisServer, type RedisServerHandle } from "../support/redis-server.ts";
import { runCli, spawnCli, waitFor } from "./helpers.ts";

const tmp = mkdtempSync(join(tmpdir(), "qworker-e2e-inspect-watch-"));
let redis: RedisServerHandle;
let sqliteUrl: string;

beforeAll(async () => {
  redis = await startRedisServer();
  // `inspect` never creates an embedded broker: a send makes one, with a task in it.
  sqliteUrl = `sqlite://${join(tmp, "broker.db")}`;
  const sent = await runCli(["send", "demo.add", "--args", "[1,2]", "--broker", sqliteUrl], { cwd: tmp, timeoutMs: 30_000 });
  expect(sent.code, sent.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  await redis?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

const INTERVAL_S = 0.5;
const frames = (stdout: string) => stdout.split("\n").filter((l) => l.startsWith("{")).length;

describe("inspect --watch with stdin not a terminal", () => {
  const cases = [
    { broker: "embedded", signal: "SIGINT" },
    { broker: "embedded", signal: "SIGTERM" },
    { broker: "redis", signal: "SIGINT" },
    { broker: "redis", signal: "SIGTERM" },
  ] as const;
  it.each(cases)("$broker broker: keeps refreshing until $signal, then exits 0", { timeout: 60_000 }, async ({ broker, signal }) => {
    const url = broker === "redis" ? redis.url : sqliteUrl;
    const p = spawnCli(["inspect", "--json", "--watch", String(INTERVAL_S), "--broker", url], { cwd: tmp });
    let exitedEarly: number | NodeJS.Signals | undefined;
    void p.exited.then((c) => (exitedEarly = c));
    const why = () => `exit: ${String(exitedEarly)}\nstdout:\n${p.stdout()}\nstderr:\n${p.stderr()}`;
    try {
      // The first frame can take a while (tsx compiles the sources under load); the later ones must follow.
      await waitFor("the first frame", () => (frames(p.stdout()) >= 1 || exitedEarly !== undefined ? true : undefined), 30_000);
      await new Promise((r) => setTimeout(r, 2.5 * INTERVAL_S * 1000));
      expect(exitedEarly, why()).toBeUndefined();
      expect(frames(p.stdout()), why()).toBeGreaterThan(1);
      const first = JSON.parse(p.stdout().split("\n")[0]!) as { queues: unknown[]; workers: unknown[] };
      expect(Array.isArray(first.queues) && Array.isArray(first.workers), why()).toBe(true);

      p.signal(signal);
      const code = await Promise.race([p.exited, new Promise<string>((r) => setTimeout(() => r("still running 10 s after the signal"), 10_000))]);
      expect(code, why()).toBe(0);
      expect(p.stderr(), why()).toBe("");
    } finally {
      p.signal("SIGKILL");
      await p.exited;
    }
  });
});
