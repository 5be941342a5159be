import { z } from "zod";
import { excessiveNesting } from "../protocol/json-depth.ts";
import type { WorkerInfo } from "./transport.ts";

/**
 * Reading back the worker records heartbeats store (`<p>w:<id>` on Redis, the workers table on SQLite).
 * `inspect` and `qworker result` (an active task's holder) use what comes out, so a record another
 * program wrote, or a broken one, is checked here once: loose, so a newer worker's extra fields pass.
 */
// Built on first use, as the task result's schema: each zod schema built at import costs a worker about
// 1 MB of RSS (zod's construction code compiled), and only `inspect` and `result` read worker records.
const makeSchema = () => {
  const count = z.number();
  return z.looseObject({
    id: z.string(),
    host: z.string(),
    pid: count,
    concurrency: count,
    pool: z.string(),
    queues: z.array(z.string()),
    startedAt: count,
    // Both brokers keep the beat time beside the record; the record's own copy is only a fallback.
    lastBeat: count.optional(),
    processed: count,
    succeeded: count.optional(),
    failed: count,
    active: count,
    version: z.string(),
    progress: z.record(z.string(), z.looseObject({ fraction: z.number(), note: z.string().optional(), at: z.number() })).optional(),
    waiting: z.array(z.string()).optional(),
    counts: z.record(z.string(), count).optional(),
  });
};
let workerInfoSchema: ReturnType<typeof makeSchema> | undefined;

/**
 * The worker record stored as `raw`, with `lastBeat` from the broker's own clock when it has one; undefined
 * for a record that is not one (not JSON, another shape, nested too deep), which the caller leaves out as
 * it leaves out a worker whose heartbeat lapsed. Never throws.
 */
export function decodeWorkerInfo(raw: string, lastBeat?: number): WorkerInfo | undefined {
  let data: unknown;
  try {
    data = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (excessiveNesting(data, raw) !== undefined) return undefined;
  const parsed = (workerInfoSchema ??= makeSchema()).safeParse(data);
  if (!parsed.success) return undefined;
  const beat = lastBeat ?? parsed.data.lastBeat;
  if (beat === undefined) return undefined;
  return { ...parsed.data, lastBeat: beat };
}
