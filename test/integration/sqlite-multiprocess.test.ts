/**
 * The embedded broker across real processes (the conformance suite uses several connections in one
 * process): concurrent consumers never share a task, and a consumer killed with SIGKILL loses nothing.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import type { Transport } from "../../src/broker/transport.ts";

const child = fileURLToPath(new URL("./sqlite/consumer-child.ts", import.meta.url));
const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-sqlite-mp-"));
const url = `sqlite://${path.join(dir, "q.db")}`;
const children: ChildProcess[] = [];
const transports: Transport[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  for (const t of transports) await t.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(): Promise<Transport> {
  const t = createSqliteTransport(url);
  await t.connect();
  transports.push(t);
  return t;
}

function start(args: string[]): { proc: ChildProcess; firstLine: Promise<string>; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, ["--import", "tsx", child, url, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(proc);
  let out = "";
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const firstLine = new Promise<string>((resolve, reject) => {
    proc.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    proc.on("exit", (code) => reject(new Error(`child exited (${code}) before answering: ${err.trim()}`)));
  });
  const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
  return { proc, firstLine, exited };
}

const enqueueMany = async (t: Transport, queue: string, n: number, label: string) => {
  const ids = Array.from({ length: n }, (_, i) => `${label}-${i}`);
  for (let i = 0; i < n; i += 250) await t.enqueue(ids.slice(i, i + 250).map((id) => ({ id, queue, priority: i % 10, payload: id })));
  return ids;
};

describe("sqlite transport across processes", () => {
  it("four consumer processes drain 2000 tasks without ever sharing one", async () => {
    const t = await open();
    const queue = "mp-drain";
    const ids = await enqueueMany(t, queue, 2000, "mp");
    const consumers = Array.from({ length: 4 }, () => start([queue, "drain"]));
    const lists = await Promise.all(consumers.map(async (c) => JSON.parse(await c.firstLine) as string[]));
    const all = lists.flat();
    expect(all.length).toBe(2000);
    expect(new Set(all).size).toBe(2000);
    expect([...all].sort()).toEqual([...ids].sort());
    expect(lists.filter((l) => l.length > 0).length).toBeGreaterThan(1);
    expect(await t.stats([queue])).toEqual([{ name: queue, ready: 0, delayed: 0, active: 0, dead: 0 }]);
  }, 60_000);

  it("tasks leased by a process killed with SIGKILL come back through recover", async () => {
    const t = await open();
    const queue = "mp-crash";
    await enqueueMany(t, queue, 5, "crash");
    const holder = start([queue, "hold", "3", "400"]);
    const held = JSON.parse(await holder.firstLine) as string[];
    expect(held).toHaveLength(3);
    holder.proc.kill("SIGKILL");
    await holder.exited;
    expect((await t.stats([queue]))[0]).toMatchObject({ ready: 2, active: 3 });

    await new Promise((r) => setTimeout(r, 450)); // the dead process's leases run out
    const report = await t.recover({ maxDeliveries: 5, heartbeatTtlMs: 60_000, deadMax: 100, deadTtlMs: 60_000 });
    expect(report.recovered).toBe(3);
    const again = await t.reserve({ queues: [queue], max: 10, leaseMs: 5000, workerId: "survivor", waitMs: 0 });
    expect(again).toHaveLength(5);
    expect(again.filter((r) => held.includes(r.id)).map((r) => r.deliveries)).toEqual([2, 2, 2]);
  }, 30_000);
});
