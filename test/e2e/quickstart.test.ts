/**
 * The README Quickstart on a machine without Redis: `npm start` (= `qworker demo`) runs a worker with the
 * example tasks on the embedded broker, sends each example a task and prints every result; and a plain
 * `qworker worker` with no broker configured anywhere says it is on the embedded broker and how to switch
 * to Redis. Children get a PATH holding nothing but `node`, so no redis-server can be found or started.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import type { Transport } from "../../src/broker/transport.ts";
import { BIN, ROOT, cleanEnv, start, waitFor, type Child } from "./embedded-procs.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-e2e-quickstart-"));
const nodeOnly = path.join(dir, "bin");
mkdirSync(nodeOnly);
symlinkSync(process.execPath, path.join(nodeOnly, "node"));
const children: Child[] = [];
let observer: Transport | undefined;

afterAll(async () => {
  await Promise.all(children.map((c) => c.kill()));
  await observer?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The environment of a fresh shell: no QWORKER_* settings, and `node` the only program on PATH. */
const bareEnv = (extra: Record<string, string> = {}) => cleanEnv({ PATH: nodeOnly, ...extra });

/** JSON log lines' messages (the CLI logs JSON lines when stderr is not a terminal). */
const messages = (text: string) =>
  text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => (JSON.parse(l) as { msg?: string }).msg ?? "");

describe("quickstart", () => {
  it("npm start runs the demo: every example's result is printed, with no redis-server on PATH", async () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe("node bin/qworker.js demo");

    const db = path.join(dir, "demo", "b.db");
    // As `npm start` runs it, plus --exit to stop afterwards and a scratch broker file instead of .qworker/.
    // demo.risky fails half the time on purpose; a fail rate of 0 keeps the expected lines fixed.
    const demo = start([BIN, "demo", "--exit", "--broker", `sqlite://${db}`], { env: bareEnv({ QWORKER_DEMO_FAIL_RATE: "0" }) });
    children.push(demo);
    const timer = setTimeout(() => void demo.kill(), 60_000);
    const code = await demo.exited;
    clearTimeout(timer);
    const why = `stdout:\n${demo.stdout()}\nstderr:\n${demo.stderr().slice(-3000)}`;
    expect(code, why).toBe(0);

    const lines = demo.stdout().split("\n");
    const expected = [
      "demo.add(2, 3) -> 5",
      `shop.send_invoice_email(1234) -> {"orderId":1234,"sent":true}`,
      `shop.notify_warehouse(1234, ["book","lamp"]) -> {"orderId":1234,"items":2,"notified":true}`,
      `reports.generate("monthly-sales", 3) -> {"report":"monthly-sales","rows":3,"checksum":3}`,
      `demo.risky(7) -> "ok 7"`,
    ];
    for (const line of expected) expect(lines, why).toContain(line);
    expect(lines, why).toContain("5/5 example tasks succeeded (demo.risky fails on purpose now and then, after its retries)");
    expect(existsSync(db)).toBe(true);
    expect(messages(demo.stderr()).some((m) => m.startsWith(`demo: worker on sqlite://${db}`)), why).toBe(true);
  }, 90_000);

  it("qworker worker with no broker configured runs on .qworker/broker.db and says how to switch to Redis", async () => {
    // A project of its own (an ESM package): a tasks dir, no config/qworker.yaml, no QWORKER_BROKER_URL.
    const cwd = path.join(dir, "project");
    mkdirSync(path.join(cwd, "tasks"), { recursive: true });
    writeFileSync(path.join(cwd, "package.json"), JSON.stringify({ name: "my-app", private: true, type: "module" }));
    const out = path.join(cwd, "hello.log");
    writeFileSync(
      path.join(cwd, "tasks", "hello.ts"),
      [
        `import { appendFileSync } from "node:fs";`,
        `import { defineTask } from ${JSON.stringify(pathToFileURL(path.join(ROOT, "src", "index.ts")).href)};`,
        `export const hello = defineTask({ name: "hello" }, (who: string) => {`,
        `  appendFileSync(${JSON.stringify(out)}, who + "\\n");`,
        `  return "hello " + who;`,
        `});`,
      ].join("\n"),
    );
    const worker = start([BIN, "worker", "--tasks", "tasks", "--log-format", "json"], { cwd, env: bareEnv() });
    children.push(worker);
    const db = path.join(cwd, ".qworker", "broker.db");
    await waitFor("the worker's start-up lines", 30_000, () => {
      if (worker.proc.exitCode !== null) throw new Error(`worker exited ${worker.proc.exitCode}: ${worker.stderr()}`);
      return messages(worker.stderr()).some((m) => m.startsWith("tasks ("));
    });
    const msgs = messages(worker.stderr());
    expect(msgs).toContain(`broker: sqlite://${db}`);
    const embedded = msgs.filter((m) => /embedded/i.test(m));
    expect(embedded).toHaveLength(1);
    expect(embedded[0]).toMatch(/SQLite/);
    expect(embedded[0]).toContain("redis://");
    expect(embedded[0]).toContain("QWORKER_BROKER_URL");
    expect(msgs).toContain("tasks (1): hello");

    // `qworker send` from another shell in the same project reaches it through the same default.
    const send = start([BIN, "send", "hello", "--args", `["world"]`], { cwd, env: bareEnv() });
    children.push(send);
    expect(await send.exited, send.stderr()).toBe(0);
    const id = send.stdout().trim().split("\n").pop() ?? "";
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    observer = createSqliteTransport(`sqlite://${db}`);
    await observer.connect();
    const result = await observer.waitForResult(id, 20_000);
    expect(result, worker.stderr()).not.toBeNull();
    expect(JSON.parse(result!)).toMatchObject({ state: "SUCCESS", result: "hello world" });
    expect(readFileSync(out, "utf8")).toBe("world\n");

    worker.proc.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
  }, 60_000);
});
