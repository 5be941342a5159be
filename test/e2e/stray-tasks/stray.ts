/**
 * Tasks of the stray-error e2e test: each leaves an error where no `await` of the handler sees it, as
 * careless task code does, next to a well-behaved task that must not be hurt by them.
 */
import { defineTask } from "../../../src/index.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const slow = defineTask({ name: "stray.slow", retry: false }, async (ms: number) => {
  await sleep(ms);
  return `slept ${ms}`;
});

// Its own promise never settles: only the error from its timer can end it.
export const timerThrow = defineTask({ name: "stray.timer_throw", retry: false }, () => {
  setTimeout(() => {
    throw new Error("boom from a timer");
  }, 10);
  return new Promise(() => {});
});

export const unhandled = defineTask({ name: "stray.unhandled", retry: false }, async () => {
  void Promise.reject(new Error("rejected and never handled"));
  await sleep(200);
  return "finished anyway";
});

// Throws from a timer after it has already succeeded.
export const late = defineTask({ name: "stray.late", retry: false }, () => {
  setTimeout(() => {
    throw new Error("boom after success");
  }, 50);
  return "done first";
});
