import { rmSync } from "node:fs";
import { Command } from "commander";
import { ms } from "../worker/format.ts";
import { healthDir, processAlive, readHealthRecords, type HealthEntry } from "../worker/health-file.ts";
import { action } from "./errors.ts";
import { parseNumberOption } from "./json-option.ts";

interface HealthFlags {
  maxAge?: string;
}

export interface HealthVerdict {
  ok: boolean;
  line: string;
}

/**
 * Judge this host's workers from their health files: healthy when at least one live worker made progress
 * within maxAgeMs. Pure apart from `alive`, so it is unit-tested.
 */
export function judge(entries: HealthEntry[], now: number, maxAgeMs: number, alive: (pid: number) => boolean, dir: string): HealthVerdict {
  const live = entries.filter((e) => alive(e.record.pid));
  if (live.length === 0) return { ok: false, line: `no qworker worker is running on this host (no live health file in ${dir})` };
  const best = live.reduce((a, b) => (b.record.progressAt > a.record.progressAt ? b : a));
  const age = now - best.record.progressAt;
  const who = `worker ${best.record.id} (pid ${best.record.pid})`;
  if (age <= maxAgeMs) return { ok: true, line: `ok: ${who} made progress ${ms(Math.max(0, age))} ago` };
  const writtenAge = now - best.record.writtenAt;
  const why =
    writtenAge > maxAgeMs
      ? `its watchdog has not reported for ${ms(writtenAge)} (event loop blocked, or process stopped/paused?)`
      : (best.record.reason ?? best.record.state);
  return { ok: false, line: `unhealthy: ${who} last made progress ${ms(age)} ago: ${why}` };
}

export function healthCommand(): Command {
  return new Command("health")
    .description("exit 0 if a worker on this host made progress recently, else 1 with the reason (a liveness probe)")
    .option("--max-age <seconds>", "how recent the progress must be", "30")
    .addHelpText("after", `\nExample (Kubernetes):\n  livenessProbe: { exec: { command: ["npx", "qworker", "health"] }, periodSeconds: 15 }`)
    .action(
      action(async (flags: HealthFlags) => {
        const maxAgeMs = parseNumberOption(flags.maxAge ?? "30", "--max-age", { min: 1 }) * 1000;
        const dir = healthDir();
        const entries = readHealthRecords(dir);
        // Files left by workers that were SIGKILLed: remove them so they are not judged again.
        for (const e of entries) if (!processAlive(e.record.pid)) rmSync(e.file, { force: true });
        const verdict = judge(entries, Date.now(), maxAgeMs, processAlive, dir);
        (verdict.ok ? process.stdout : process.stderr).write(`${verdict.ok ? "" : "qworker: "}${verdict.line}\n`);
        process.exitCode = verdict.ok ? 0 : 1;
      }),
    );
}
