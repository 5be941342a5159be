/**
 * qworker's Celery wire output read back by the real Python libraries (Debian's celery 5.2 / kombu 5.2):
 * envelopes through kombu's Message + celery.worker.request.Request, result meta through the Redis
 * backend's decode_result. No broker and no Celery worker are involved; skipped when the system Python
 * has no celery module.
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  decodeCeleryMessage,
  encodeCeleryRetry,
  encodeCeleryTask,
  failureMeta,
  notRegisteredMeta,
  retryMeta,
  revokedMeta,
  serializeResultMeta,
  startedMeta,
  successMeta,
} from "../../src/protocol/celery/index.ts";

const PYTHON = "/usr/bin/python3";
const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "interop", "python", "check_wire.py");
const hasCelery = spawnSync(PYTHON, ["-c", "import celery, kombu"], { stdio: "ignore" }).status === 0;

interface PyMessage {
  ok: boolean;
  error?: string;
  id: string;
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  embed: Record<string, unknown>;
  eta: string | null;
  expires: string | null;
  retries: number;
  time_limits: [number | null, number | null];
  root_id: string;
  parent_id: string | null;
  group: string | null;
  delivery_info: { exchange: string; routing_key: string };
  delivery_tag: string;
  correlation_id: string;
  ignore_result: boolean;
}
interface PyResult {
  ok: boolean;
  error?: string;
  status: string;
  task_id: string;
  date_done: string | null;
  date_done_parsed: string | null;
  traceback: string | null;
  view: { kind: "exception"; class: string; bases: string[]; args: unknown[]; str: string } | { kind: "value"; value: unknown };
}

function runPython(messages: string[], results: string[]): { messages: PyMessage[]; results: PyResult[] } {
  const proc = spawnSync(PYTHON, [SCRIPT], { input: JSON.stringify({ messages, results }), encoding: "utf8", timeout: 30_000 });
  if (proc.status !== 0) throw new Error(`check_wire.py failed: ${proc.stderr}`);
  return JSON.parse(proc.stdout) as { messages: PyMessage[]; results: PyResult[] };
}

const NOW = Date.UTC(2026, 10, 25, 16, 25, 20, 394);
const named = (name: string, message: string) => Object.assign(new Error(message), { name });

describe.skipIf(!hasCelery)("Celery (Python) reads what qworker writes", () => {
  it("decodes our task envelopes exactly as a Celery worker would", () => {
    const plain = encodeCeleryTask({ task: "tasks.add", args: [2, 3] });
    const rich = encodeCeleryTask({
      task: "tasks.echo",
      args: ["héllo ✓ 🎉", { deep: [1, { x: null }] }],
      kwargs: { name: "Zoë", n: 2.5 },
      countdownMs: 30_000,
      expiresInMs: 3_600_000,
      priority: 6,
      queue: "emails",
      hardTimeLimitMs: 10_000,
      softTimeLimitMs: 5_000,
      group: "g-1",
      ignoreResult: true,
      now: NOW,
    });
    const retry = encodeCeleryRetry(decodeCeleryMessage(plain.raw), { countdownMs: 1_000, now: NOW });
    const [p, r, rt] = runPython([plain.raw, rich.raw, retry.raw], []).messages;
    expect(p).toMatchObject({ ok: true, id: plain.id, task: "tasks.add", args: [2, 3], kwargs: {}, eta: null, retries: 0, root_id: plain.id, parent_id: null, delivery_tag: plain.deliveryTag, correlation_id: plain.id });
    expect(p!.embed).toEqual({ callbacks: null, errbacks: null, chain: null, chord: null });
    expect(r).toMatchObject({
      ok: true,
      task: "tasks.echo",
      args: ["héllo ✓ 🎉", { deep: [1, { x: null }] }],
      kwargs: { name: "Zoë", n: 2.5 },
      eta: "2026-11-25T16:25:50.394000+00:00",
      expires: "2026-11-25T17:25:20.394000+00:00",
      time_limits: [10, 5],
      group: "g-1",
      ignore_result: true,
      delivery_info: { exchange: "", routing_key: "emails" },
    });
    expect(rt).toMatchObject({ ok: true, id: plain.id, retries: 1, eta: "2026-11-25T16:25:21.394000+00:00", root_id: plain.id, parent_id: plain.id });
  });

  it("turns our result meta into the Python exceptions and values a client would get", () => {
    const metas = [
      successMeta("s1", { a: [1, "ü"] }, { now: NOW }),
      failureMeta("f1", named("ValueError", "boom 42")),
      failureMeta("f2", new TypeError("bad type")),
      failureMeta("f3", new RangeError("too big")),
      failureMeta("f4", new ReferenceError("x is not defined")),
      failureMeta("f5", new Error("plain")),
      failureMeta("f6", named("ShippingError", "late")),
      failureMeta("f7", named("KeyError", "missing")),
      notRegisteredMeta("n1", "tasks.nope"),
      revokedMeta("r1", "expired"),
      retryMeta("t1", named("ValueError", "again")),
      startedMeta("st", { pid: 1, hostname: "w@h" }),
    ].map(serializeResultMeta);
    const out = runPython([], metas).results;
    for (const r of out) expect(r.ok, r.error).toBe(true);
    const cls = (i: number) => (out[i]!.view as { class: string }).class;
    expect(out[0]!.view).toEqual({ kind: "value", value: { a: [1, "ü"] } });
    // AsyncResult.date_done parses it with celery.utils.iso8601.parse_iso8601.
    expect(out[0]!.date_done).toBe("2026-11-25T16:25:20.394000");
    expect(out[0]!.date_done_parsed).toBe("2026-11-25T16:25:20.394000");
    expect(out[11]!.date_done).toBeNull();
    expect(cls(1)).toBe("builtins.ValueError");
    expect(out[1]!.view).toMatchObject({ args: ["boom 42"], str: "boom 42" });
    expect(out[1]!.traceback).toMatch(/^ValueError: boom 42\n/);
    expect(cls(2)).toBe("builtins.TypeError");
    expect(cls(3)).toBe("builtins.ValueError");
    expect(out[3]!.traceback).toMatch(/^RangeError: too big/);
    expect(cls(4)).toBe("builtins.NameError");
    expect(cls(5)).toBe("builtins.Exception");
    // Unknown names become a synthesized celery.exceptions.<Name> that is still an Exception.
    expect(cls(6)).toBe("celery.exceptions.ShippingError");
    expect((out[6]!.view as { bases: string[] }).bases).toContain("builtins.Exception");
    expect(cls(7)).toBe("builtins.KeyError");
    expect(cls(8)).toBe("celery.exceptions.NotRegistered");
    expect(cls(9)).toBe("celery.exceptions.TaskRevokedError");
    expect(out[9]!.view).toMatchObject({ str: "expired" });
    expect(out[10]!.status).toBe("RETRY");
    expect(cls(10)).toBe("builtins.ValueError");
    expect(out[11]!.view).toEqual({ kind: "value", value: { pid: 1, hostname: "w@h" } });
  });
});
