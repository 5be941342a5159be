import type { Reservation } from "../transport.ts";

/**
 * The six-value lease rows (id, queue, payload, token, deliveries, leaseUntil) that reserve.lua's full
 * reply and celery_claim.lua both give, read from index `from`.
 */
export function parseLeaseRows(out: (string | number)[], from: number): Reservation[] {
  const tasks: Reservation[] = [];
  for (let i = from; i + 5 < out.length; i += 6) {
    tasks.push({
      id: String(out[i]),
      queue: String(out[i + 1]),
      payload: String(out[i + 2]),
      token: String(out[i + 3]),
      deliveries: Number(out[i + 4]),
      leaseUntil: Number(out[i + 5]),
    });
  }
  return tasks;
}
