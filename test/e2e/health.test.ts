/**
 * `qworker health` as a liveness probe sees a worker: live (0), stuck (1, with why) and dead (1), including
 * a worker killed under a parent that does not reap it (a shell that went on to `exec` something else, a
 * container's PID 1 that is not an init): its process is a zombie, which answers signal 0 like a live one.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { BIN, ROOT, cleanEnv, runCli, waitFor } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "qworker-e2e-health-"));
const healthDir = join(dir, "health");
const started: ChildProcess[] = [];
const pids: number[] = [];
afterAll(() => {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const p of started) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

mkdirSync(join(dir, "tasks"));
writeFileSync(join(dir, "tasks", "noop.mjs"), `import { defineTask } from ${JSON.stringify(pathToFileURL(join(ROOT, "src/index.ts")).href)};\nexport const noop = defineTask({ name: "health.noop" }, () => 1);\n`);

const health = (...args: string[]) => runCli(["health", ...args], { cwd: dir, env: { QWORKER_HEALTH_DIR: healthDir } });

describe.skipIf(process.platform !== "linux")("qworker health", () => {
  it("0 for a live worker, 1 while it is stuck, 1 once it is dead though its parent never reaped it", { timeout: 60_000 }, async () => {
    // sh starts the worker, then becomes `sleep`, which never waits for children: a killed worker stays a zombie.
    const env = cleanEnv({ QWORKER_FROM_SOURCE: "1", QWORKER_HEALTH_DIR: healthDir, QWORKER_TASKS_DIR: join(dir, "tasks") });
    const sh = spawn("sh", ["-c", `"${process.execPath}" "${BIN}" worker --log-format json 2>"${join(dir, "worker.log")}" & echo $!; exec sleep 60`], {
      cwd: dir,
      env,
      stdio: ["ignore", "pipe", "ignore"],
    });
    started.push(sh);
    const workerPid = Number(await new Promise<string>((resolve) => sh.stdout!.once("data", (d: Buffer) => resolve(d.toString().trim()))));
    pids.push(workerPid);
    await waitFor("the worker's health file", () => (existsSync(healthDir) && readdirSync(healthDir).length > 0 ? true : undefined), 30_000, 100).catch((err: Error) => {
      throw new Error(`${err.message}; worker log:\n${readFileSync(join(dir, "worker.log"), "utf8")}`);
    });

    const live = await waitFor("a healthy verdict", async () => {
      const r = await health();
      return r.code === 0 ? r : undefined;
    }, 10_000, 200);
    expect(live.stdout).toMatch(new RegExp(`^ok: worker \\S+ \\(pid ${workerPid}\\) made progress .* ago\\n$`));

    process.kill(workerPid, "SIGSTOP");
    await new Promise((r) => setTimeout(r, 2500));
    const stuck = await health("--max-age", "1");
    expect(stuck.code).toBe(1);
    expect(stuck.stderr).toMatch(new RegExp(`^qworker: unhealthy: worker \\S+ \\(pid ${workerPid}\\) last made progress .* ago: its watchdog has not reported for \\S+ s \\(event loop blocked, or process stopped\\/paused\\?\\)\\n$`));

    process.kill(workerPid, "SIGKILL");
    await waitFor("the worker to be a zombie", () => (/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${workerPid}/stat`, "utf8")) ? true : undefined), 5_000, 20);
    const dead = await health();
    expect(dead.stderr).toMatch(/^qworker: no qworker worker is running on this host/);
    expect(dead.code).toBe(1);
  });
});
