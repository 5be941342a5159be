/**
 * Several processes writing one embedded (SQLite) broker file at once: how much work each gets done and how
 * long its event loop stalls while another process holds the write lock.
 *
 *   npx tsx bench/sqlite-contention.ts [--producers 2] [--consumers 2] [--seconds 6]
 *
 * Each child opens the transport on a fresh shared file and, for `--seconds`, either enqueues batches of 20
 * tasks (producer) or reserves up to 20 and settles them (consumer), yielding one event-loop turn between
 * calls. It samples its event-loop delay (`monitorEventLoopDelay`, 1 ms resolution) and prints its calls
 * and the delay's p50, p99 and max. Bounded by `--seconds` and a kill after twice that.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createSqliteTransport } from "../src/broker/embedded/index.ts";
import { buildEnqueueItem } from "../src/client/build-message.ts";

const BATCH = 20;

async function child(url: string, role: "producer" | "consumer", seconds: number): Promise<void> {
  const t = createSqliteTransport(url);
  await t.connect();
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const end = Date.now() + seconds * 1000;
  let calls = 0;
  while (Date.now() < end) {
    if (role === "producer") {
      await t.enqueue(Array.from({ length: BATCH }, (_, k) => buildEnqueueItem("bench.noop", [k], {}, { queue: "default", maxPayloadBytes: 1 << 20 })));
      calls++;
    } else {
      const got = await t.reserve({ queues: ["default"], max: BATCH, leaseMs: 30_000, workerId: `bench-${process.pid}`, waitMs: 50 });
      if (got.length > 0) {
        await t.settle(got.map((r) => ({ id: r.id, token: r.token, queue: r.queue, outcome: "SUCCESS" as const, resultTtlMs: 60_000 })));
        calls++;
      }
    }
    await new Promise((r) => setImmediate(r));
  }
  delay.disable();
  const ms = (ns: number) => (ns / 1e6).toFixed(1);
  process.stdout.write(`${JSON.stringify({ role, pid: process.pid, calls, p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max) })}\n`);
  await t.close();
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      producers: { type: "string", default: "2" },
      consumers: { type: "string", default: "2" },
      seconds: { type: "string", default: "6" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write("npx tsx bench/sqlite-contention.ts [--producers 2] [--consumers 2] [--seconds 6]\n");
    return;
  }
  const seconds = Number(values.seconds);
  const dir = mkdtempSync(path.join(os.tmpdir(), "qw-contention-"));
  const url = `sqlite://${path.join(dir, "broker.db")}`;
  try {
    // Create the schema once, so the children do not all migrate at the same moment.
    const setup = createSqliteTransport(url);
    await setup.connect();
    await setup.close();
    const self = fileURLToPath(import.meta.url);
    const roles = [...Array<"producer">(Number(values.producers)).fill("producer"), ...Array<"consumer">(Number(values.consumers)).fill("consumer")];
    const lines = await Promise.all(
      roles.map(
        (role) =>
          new Promise<string>((resolve, reject) => {
            const p = spawn(process.execPath, [...process.execArgv, self, "--child", role, url, String(seconds)], { stdio: ["ignore", "pipe", "inherit"] });
            let out = "";
            const kill = setTimeout(() => p.kill("SIGKILL"), seconds * 2000 + 10_000);
            p.stdout.on("data", (d: Buffer) => (out += d.toString()));
            p.on("exit", (code) => {
              clearTimeout(kill);
              if (code === 0) resolve(out.trim());
              else reject(new Error(`${role} exited with ${code}`));
            });
          }),
      ),
    );
    process.stdout.write(`${roles.length} processes on one SQLite file for ${seconds} s (batches of ${BATCH})\n`);
    process.stdout.write(`${"role".padEnd(9)} ${"calls".padStart(6)} ${"loop delay p50".padStart(15)} ${"p99".padStart(7)} ${"max".padStart(8)}\n`);
    for (const line of lines) {
      const r = JSON.parse(line) as { role: string; calls: number; p50: string; p99: string; max: string };
      process.stdout.write(`${r.role.padEnd(9)} ${String(r.calls).padStart(6)} ${`${r.p50} ms`.padStart(15)} ${`${r.p99} ms`.padStart(7)} ${`${r.max} ms`.padStart(8)}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const at = process.argv.indexOf("--child");
if (at >= 0) {
  const [role, url, seconds] = process.argv.slice(at + 1);
  await child(url!, role as "producer" | "consumer", Number(seconds));
} else {
  await main();
}
