/**
 * Child process for sqlite-multiprocess.test.ts: a bare consumer on a shared SQLite broker file.
 *   argv: url queue mode [max leaseMs]
 *   mode "drain": reserve+settle until the queue stays empty, then print the ids as JSON;
 *   mode "hold": reserve `max` tasks under a `leaseMs` lease, print their ids, then hang until killed.
 */
import { createSqliteTransport } from "../../../src/broker/embedded/index.ts";

const [url, queue, mode, maxArg, leaseArg] = process.argv.slice(2);
const t = createSqliteTransport(url!);
await t.connect();
const workerId = `child-${process.pid}`;

if (mode === "hold") {
  const got = await t.reserve({ queues: [queue!], max: Number(maxArg ?? 5), leaseMs: Number(leaseArg ?? 60_000), workerId, waitMs: 5000 });
  process.stdout.write(JSON.stringify(got.map((r) => r.id)) + "\n");
  setInterval(() => {}, 1000); // hold the leases until SIGKILL
} else {
  const ids: string[] = [];
  let empty = 0;
  while (empty < 3) {
    const got = await t.reserve({ queues: [queue!], max: 1 + Math.floor(Math.random() * 8), leaseMs: 30_000, workerId, waitMs: 100 });
    if (got.length === 0) {
      empty++;
      continue;
    }
    empty = 0;
    const ok = await t.settle(got.map((r) => ({ id: r.id, token: r.token, queue: r.queue, outcome: "SUCCESS" as const, resultTtlMs: 60_000 })));
    if (ok.length !== got.length) throw new Error(`settle refused ${got.length - ok.length} fresh leases`);
    ids.push(...got.map((r) => r.id));
  }
  await t.close();
  process.stdout.write(JSON.stringify(ids) + "\n");
}
