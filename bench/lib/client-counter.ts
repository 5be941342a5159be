/**
 * Counts the commands this process sends through ioredis, so the harness can tell client commands from
 * the commands Lua scripts run inside Redis (the server counts both the same way, see redis-info.ts).
 *
 * It wraps `Redis.prototype.sendCommand`, which every ioredis command goes through, including EVALSHA for
 * defined scripts (and the EVAL retry after NOSCRIPT) and each command queued in a pipeline or MULTI, which
 * ioredis hands to sendCommand with the pipeline's write stream as second argument. "Round trips" counts
 * each distinct pipeline write (one per pipeline/MULTI flush) once and every other command once. Connections passed to `exclude` (the
 * harness's own probe) are not counted. Both qworker and BullMQ use the same ioredis package here, so one
 * patch sees every connection of the engine under test.
 */
import { Redis } from "ioredis";

export interface ClientCounts {
  /** Every command handed to ioredis (a pipelined command counts as one command). */
  commands: number;
  /** Requests that waited for their own reply: commands outside pipelines + pipeline/MULTI execs. */
  roundTrips: number;
  byCommand: Record<string, number>;
}

const excluded = new WeakSet<object>();
const seenPipelineStreams = new WeakSet<object>();
let counts: ClientCounts = { commands: 0, roundTrips: 0, byCommand: {} };
let installed = false;

export function installClientCounter(): void {
  if (installed) return;
  installed = true;
  const proto = Redis.prototype as unknown as { sendCommand: (...args: unknown[]) => unknown };
  const originalSend = proto.sendCommand;
  proto.sendCommand = function (this: object, ...args: unknown[]): unknown {
    if (!excluded.has(this)) {
      const command = args[0] as { name?: string } | undefined;
      const name = (command?.name ?? "?").toLowerCase();
      counts.commands++;
      counts.byCommand[name] = (counts.byCommand[name] ?? 0) + 1;
      const stream = args[1];
      if (stream === undefined || stream === null || typeof stream !== "object") counts.roundTrips++;
      else if (!seenPipelineStreams.has(stream)) {
        seenPipelineStreams.add(stream);
        counts.roundTrips++;
      }
    }
    return originalSend.apply(this, args);
  };
}

export function excludeFromCount(conn: object): void {
  excluded.add(conn);
}

export function resetClientCounts(): void {
  counts = { commands: 0, roundTrips: 0, byCommand: {} };
}

export function readClientCounts(): ClientCounts {
  return { commands: counts.commands, roundTrips: counts.roundTrips, byCommand: { ...counts.byCommand } };
}
