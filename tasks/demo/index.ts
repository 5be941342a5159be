import { defineTask } from "qworker";

/** The hello-world of task queues. */
export const add = defineTask({ name: "demo.add", params: ["x", "y"] }, (x: number, y: number) => x + y);

/**
 * Fails about half the time, as in Celery's tutorial, so you can watch retries with backoff.
 * Set QWORKER_DEMO_FAIL_RATE=1 to make it fail every time.
 */
export const risky = defineTask({ name: "demo.risky", retry: { max: 3, countdown: 1 } }, (n: number = 0) => {
  const rate = Number(process.env.QWORKER_DEMO_FAIL_RATE ?? "0.5");
  if (Math.random() < rate) throw new Error(`flaky dependency failed on input ${n}`);
  return `ok ${n}`;
});
