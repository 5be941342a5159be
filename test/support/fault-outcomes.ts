/**
 * Counting what the fault fixture tasks (test/fixtures/tasks-faults) recorded: one line per run in
 * `<kind>.<pid>.log` files, written outside the broker so the broker under test cannot hide a loss.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export function makeOutDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-faults-"));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Every line recorded for `kind` by any worker process, in no particular order. */
export function recorded(dir: string, kind = "done"): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    if (!f.startsWith(`${kind}.`) || !f.endsWith(".log")) continue;
    for (const line of readFileSync(path.join(dir, f), "utf8").split("\n")) if (line !== "") out.push(line);
  }
  return out;
}

export interface Tally {
  /** Distinct expected ids that ran at least once. */
  done: number;
  lost: string[];
  /** Ids that ran more than once, with how many extra runs. */
  duplicates: Map<string, number>;
  extraRuns: number;
  unexpected: string[];
}

export function tally(dir: string, expected: string[]): Tally {
  const want = new Set(expected);
  const counts = new Map<string, number>();
  const unexpected: string[] = [];
  for (const id of recorded(dir)) {
    if (!want.has(id)) unexpected.push(id);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  const duplicates = new Map<string, number>();
  let extraRuns = 0;
  for (const [id, n] of counts) {
    if (n > 1) {
      duplicates.set(id, n - 1);
      extraRuns += n - 1;
    }
  }
  const lost = expected.filter((id) => !counts.has(id));
  return { done: expected.length - lost.length, lost, duplicates, extraRuns, unexpected };
}
