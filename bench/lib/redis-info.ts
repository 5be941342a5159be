/**
 * Redis cost accounting from the server's own counters, sampled right before and right after a drain.
 *
 * What Redis 7 counts (checked on 7.0 with an EVAL that makes three redis.call()s: total went up by 4):
 * - `total_commands_processed` counts every command executed, INCLUDING the commands a Lua script runs.
 * - `INFO commandstats` has one entry per command: EVAL/EVALSHA/FCALL count once per script call, and each
 *   redis.call() inside the script is counted again under its own command.
 * So the server side alone cannot tell a client's GET from a script's GET; the client side is counted in
 * the engine process (see client-counter.ts) and script-internal calls are derived as server − client.
 */
import type { Redis } from "ioredis";

export interface InfoSnapshot {
  totalCommands: number;
  /** used_cpu_user + used_cpu_sys of the server, seconds. */
  cpuSec: number;
  /** command name (lowercase, "config|get" style for subcommands) → calls */
  calls: Record<string, number>;
}

export const SCRIPT_COMMANDS = new Set(["eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"]);

export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

export function parseCommandStats(text: string): Record<string, number> {
  const calls: Record<string, number> = {};
  for (const [key, value] of Object.entries(parseInfo(text))) {
    if (!key.startsWith("cmdstat_")) continue;
    const m = /(?:^|,)calls=(\d+)/.exec(value);
    if (m) calls[key.slice("cmdstat_".length)] = Number(m[1]);
  }
  return calls;
}

/** Three INFO calls on `probe`; the caller subtracts the probe's own commands (see diffSnapshots). */
export async function takeSnapshot(probe: Redis): Promise<InfoSnapshot> {
  const stats = parseInfo(await probe.info("stats"));
  const cmd = parseCommandStats(await probe.info("commandstats"));
  const cpu = parseInfo(await probe.info("cpu"));
  return {
    totalCommands: Number(stats.total_commands_processed ?? 0),
    cpuSec: Number(cpu.used_cpu_user ?? 0) + Number(cpu.used_cpu_sys ?? 0),
    calls: cmd,
  };
}

export interface CommandDelta {
  total: number;
  /** Server CPU seconds (includes the probe's own INFO calls: microseconds). */
  cpuSec: number;
  calls: Record<string, number>;
  scriptCalls: number;
}

/**
 * after − before, minus what the probe itself ran between the two snapshots: takeSnapshot sends three INFO
 * commands; a command's stats are recorded after it runs, so the "before" ones are inside the delta and the
 * "after" ones are not.
 */
export function diffSnapshots(before: InfoSnapshot, after: InfoSnapshot, probeInfoCalls = 3): CommandDelta {
  const calls: Record<string, number> = {};
  for (const [name, n] of Object.entries(after.calls)) {
    const d = n - (before.calls[name] ?? 0);
    if (d > 0) calls[name] = d;
  }
  if (calls.info !== undefined) {
    calls.info -= probeInfoCalls;
    if (calls.info <= 0) delete calls.info;
  }
  let scriptCalls = 0;
  for (const [name, n] of Object.entries(calls)) if (SCRIPT_COMMANDS.has(name)) scriptCalls += n;
  return { total: after.totalCommands - before.totalCommands - probeInfoCalls, cpuSec: after.cpuSec - before.cpuSec, calls, scriptCalls };
}

export async function redisVersion(probe: Redis): Promise<string> {
  return parseInfo(await probe.info("server")).redis_version ?? "unknown";
}
