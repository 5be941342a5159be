/**
 * Rules for task time limits, shared by the config, `defineTask`, the send path and the worker.
 *
 * A Node timer waits at most 2^31 - 1 ms (about 24.8 days); asked for longer, it fires after 1 ms, so a
 * 30-day limit would fail every task at once. Limits past that are refused where they are set, and
 * clamped where they arrive from outside (a Celery message, an older client).
 */
export const MAX_TIMER_MS = 2_147_483_647;

/** The longest time limit, in whole seconds, that a worker can keep. */
export const MAX_TIME_LIMIT_SEC = Math.floor(MAX_TIMER_MS / 1000);

/** What a too-long time limit is told, wherever it is set (config, defineTask, send). */
export const TOO_LONG_LIMIT = `must be at most ${MAX_TIME_LIMIT_SEC} seconds (about 24 days, the longest a timer can wait)`;

/** Why a time limit (in seconds) cannot be kept, or undefined when it can. */
export function limitLengthProblem(seconds: number | undefined, name: string): string | undefined {
  if (seconds === undefined || seconds <= MAX_TIME_LIMIT_SEC) return undefined;
  return `${name} ${TOO_LONG_LIMIT}, found ${seconds}: leave it unset for no limit`;
}

/** Why a soft time limit cannot work with a hard one, or undefined when it can (or either is unset). */
export function softLimitProblem(soft: number | undefined, hard: number | undefined): string | undefined {
  // At or past the hard limit the soft one never fires: the task is stopped without its warning.
  if (soft === undefined || hard === undefined || soft < hard) return undefined;
  return `softTimeLimit (${soft} s) must be below timeLimit (${hard} s): the soft limit warns the task before the hard one stops it`;
}

/** Every problem with a task's pair of limits (seconds), or undefined when both can be kept. */
export function timeLimitsProblem(soft: number | undefined, hard: number | undefined): string | undefined {
  return limitLengthProblem(hard, "timeLimit") ?? limitLengthProblem(soft, "softTimeLimit") ?? softLimitProblem(soft, hard);
}

/** A limit (ms) as a timer can wait for it: longer ones are held to the longest wait a timer has. */
export function timerMs(ms: number): number {
  return ms > MAX_TIMER_MS ? MAX_TIMER_MS : ms;
}
