/** Sending fault fixture tasks straight through a transport, in batches (one round trip per batch). */
import type { Transport } from "../../src/broker/transport.ts";
import { buildEnqueueItem } from "../../src/client/build-message.ts";

export async function enqueueNumbered(
  t: Transport,
  ids: string[],
  opts: { queue?: string; task?: string; ms?: number; batch?: number } = {},
): Promise<void> {
  const batch = opts.batch ?? 500;
  for (let i = 0; i < ids.length; i += batch) {
    const items = ids
      .slice(i, i + batch)
      .map((id) => buildEnqueueItem(opts.task ?? "faults.record", [id, opts.ms ?? 5], { id: `t-${id}` }, { queue: opts.queue ?? "default", maxPayloadBytes: 16 * 1024 * 1024 }));
    await t.enqueue(items);
  }
}

export const numbered = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
