/**
 * CPU cost of recording task events on the Redis transport, in isolation from the rest of the worker.
 *
 *   npx tsx bench/events-cost.ts [--rounds 150] [--repeat 3]
 *
 * A worker writes three events per task (received, started, succeeded) through the ActivityRecorder, which
 * batches them into one stream entry per flush (docs/events.md). This drives the real recorder and the
 * real Redis transport with those three calls for 1,000 tasks per round, flushes, and awaits the XADD,
 * for `--rounds` rounds after 30 unmeasured ones; it reports this process's CPU (user + system, all
 * threads) per task. The drains of `bench/run.ts` include the same cost among everything else, where it
 * drowns in their noise on a shared 2-core machine; here a change to the event path shows by itself.
 * Bounded: fixed counts, a private redis-server (test/support/redis-server.ts) stopped at the end.
 */
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import pino from "pino";
import { createTransport } from "../src/broker/factory.ts";
import { ActivityRecorder } from "../src/events/recorder.ts";
import type { TaskMessage } from "../src/protocol/message.ts";
import { TaskRegistry } from "../src/tasks/registry.ts";
import { redisServerAvailable, startRedisServer } from "../test/support/redis-server.ts";

const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "150" },
    repeat: { type: "string", default: "3" },
    help: { type: "boolean", default: false },
  },
});
if (flags.help) {
  process.stdout.write("Usage: npx tsx bench/events-cost.ts [--rounds 150] [--repeat 3]\n");
  process.exit(0);
}
if (!redisServerAvailable()) {
  process.stderr.write("events-cost: redis-server is not installed (apt-get install -y redis-server)\n");
  process.exit(1);
}

const TASKS = 1000;
const WARMUP_ROUNDS = 30;
const rounds = Number(flags.rounds);
const repeat = Number(flags.repeat);

const redis = await startRedisServer();
try {
  const samples: number[] = [];
  for (let r = 0; r < repeat; r++) {
    const transport = await createTransport(redis.url);
    await transport.connect();
    const recorder = new ActivityRecorder({
      workerId: `bench.${process.pid}.${r}`,
      transport,
      registry: new TaskRegistry(),
      logger: pino({ level: "silent" }),
      eventsMaxLen: 10_000,
    });
    // The messages the bench's drains carry: a no-op task with one small argument, results ignored.
    const msgs: TaskMessage[] = Array.from({ length: TASKS }, (_, i) => ({
      v: 1,
      id: randomUUID(),
      task: "bench.noop",
      args: [{ i, t: Date.now() + 0.123 }],
      kwargs: {},
      queue: "bench",
      priority: 0,
      retries: 0,
      sentAt: Date.now(),
      ignoreResult: true,
    }));
    const round = async (): Promise<void> => {
      for (const m of msgs) {
        recorder.taskReceived(m, 1, Date.now());
        recorder.taskStarted(m);
        recorder.taskSucceeded(m, undefined, 0.05);
      }
      await recorder.flush();
    };
    for (let i = 0; i < WARMUP_ROUNDS; i++) await round();
    const before = process.cpuUsage();
    for (let i = 0; i < rounds; i++) await round();
    const used = process.cpuUsage(before);
    samples.push((used.user + used.system) / (rounds * TASKS));
    await recorder.close();
    await transport.close();
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  process.stdout.write(
    `events-cost: ${rounds} rounds of ${TASKS} tasks (3 events each), ${repeat} repetitions\n` +
      `CPU per task, median: ${median.toFixed(2)} us   (samples: ${samples.map((s) => s.toFixed(2)).join(" ")})\n`,
  );
} finally {
  await redis.cleanup();
}
