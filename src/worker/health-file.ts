import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";

/**
 * What a running worker says about itself on this host, for `qworker health` (a liveness probe). One small
 * JSON file per worker, rewritten about once a second by the watchdog; a probe needs no broker access,
 * so it still answers when the broker is the thing that is down.
 */
export const healthRecordSchema = z.object({
  id: z.string(),
  pid: z.number().int(),
  /** Last time the worker was seen making progress (epoch ms). */
  progressAt: z.number(),
  writtenAt: z.number(),
  state: z.enum(["ok", "broker-down", "stalled", "stopping"]),
  /** Why the state is not "ok", in one line. */
  reason: z.string().optional(),
});

export type HealthRecord = z.infer<typeof healthRecordSchema>;

/** QWORKER_HEALTH_DIR, else a per-user directory under the system temp dir. */
export function healthDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.QWORKER_HEALTH_DIR) return env.QWORKER_HEALTH_DIR;
  const uid = typeof process.getuid === "function" ? process.getuid() : "user";
  return join(tmpdir(), `qworker-health-${uid}`);
}

const fileName = (workerId: string) => `${workerId.replace(/[^A-Za-z0-9._-]/g, "_")}.health.json`;

export class HealthFile {
  private readonly path: string;
  private broken = false;

  constructor(
    workerId: string,
    readonly dir: string = healthDir(),
  ) {
    this.path = join(dir, fileName(workerId));
  }

  /** Write atomically (temp file + rename) so a probe never reads half a record. Never throws. */
  write(record: HealthRecord): void {
    try {
      mkdirSync(this.dir, { recursive: true });
      const tmp = `${this.path}.${process.pid}.tmp`;
      writeFileSync(tmp, JSON.stringify(record));
      renameSync(tmp, this.path);
      this.broken = false;
    } catch (err) {
      // A read-only or full disk must not take the worker down; the probe will report the file as stale.
      if (!this.broken) process.emitWarning(`qworker: cannot write health file ${this.path}: ${(err as Error).message}`);
      this.broken = true;
    }
  }

  remove(): void {
    rmSync(this.path, { force: true });
  }
}

export interface HealthEntry {
  file: string;
  record: HealthRecord;
}

/** Every readable health record in `dir`; unreadable files are skipped. */
export function readHealthRecords(dir: string): HealthEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: HealthEntry[] = [];
  for (const name of names) {
    if (!name.endsWith(".health.json")) continue;
    const file = join(dir, name);
    try {
      const parsed = healthRecordSchema.safeParse(JSON.parse(readFileSync(file, "utf8")));
      if (parsed.success) out.push({ file, record: parsed.data });
    } catch {
      // Being replaced right now, or not ours: skip it.
    }
  }
  return out;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
  return !isZombie(pid);
}

/**
 * A killed worker whose parent has not reaped it (a shell that exec'd into something else, a container's
 * PID 1 that is no init) is a zombie: it answers signal 0 like a live process, but it is dead. Linux only;
 * elsewhere, or when /proc cannot be read, the signal's answer stands.
 */
function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  // "pid (comm) state …": comm may itself hold spaces and parentheses, so the state follows the last ")".
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state === "Z" || state === "X";
}
