/**
 * The task module whose import is under way. A module whose top-level await never settles leaves the
 * process with nothing to wait for, and Node then ends it as if the command had finished: the CLI's exit
 * guard (src/cli/main.ts) reads this to blame that module instead of reporting a bug in qworker.
 */
let current: string | undefined;

/** The module being imported now (as discovery shows its path), if any. */
export function moduleLoading(): string | undefined {
  return current;
}

/** Import one task module, known as `shown` while its import is pending. */
export async function whileLoading<T>(shown: string, load: () => Promise<T>): Promise<T> {
  current = shown;
  try {
    return await load();
  } finally {
    current = undefined;
  }
}
