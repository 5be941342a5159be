/**
 * For tests of things that must not hang: the promise's outcome, or "hung" if it has not settled within
 * `ms`, so a test asserts on a hang instead of timing out.
 */
export async function within<T>(p: Promise<T>, ms: number): Promise<{ value: T } | { error: Error } | "hung"> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), ms)));
  try {
    return await Promise.race([p.then((value) => ({ value }), (error: Error) => ({ error })), hung]);
  } finally {
    clearTimeout(timer);
  }
}
