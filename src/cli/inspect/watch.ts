/** Clear the screen and home the cursor, so each refresh replaces the last (like `top`). */
export const CLEAR = "\x1b[H\x1b[2J";

export interface WatchIO {
  out: NodeJS.WriteStream;
  input: NodeJS.ReadStream;
}

/**
 * Run `frame` every `intervalMs` until the user presses q or Ctrl-C (or SIGINT/SIGTERM arrives), then
 * restore the terminal. On a TTY each frame replaces the previous one; otherwise frames are appended,
 * which is what a log or `--json` consumer wants.
 */
export async function watchLoop(frame: () => Promise<string>, intervalMs: number, io: WatchIO = { out: process.stdout, input: process.stdin }): Promise<void> {
  const tty = io.out.isTTY === true;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const onKey = (data: Buffer) => {
    const s = data.toString("utf8");
    if (s === "q" || s === "Q" || s === "\x03") stop();
  };
  const rawable = io.input.isTTY === true && typeof io.input.setRawMode === "function";
  if (rawable) {
    io.input.setRawMode(true);
    io.input.resume();
    io.input.on("data", onKey);
  }
  const onSignal = () => stop();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  void stopped.then(() => (done = true));
  try {
    while (!done) {
      let text: string;
      try {
        text = await frame();
      } catch (err) {
        // A broker hiccup shows on screen and the next refresh tries again; watch mode never dies of it.
        text = `error: ${(err as Error).message.split("\n")[0]}\n`;
      }
      if (done) break;
      io.out.write(tty ? `${CLEAR}${text}\n${footer(intervalMs)}` : text);
      // The timer is what keeps the process alive between frames when stdin is not a terminal (CI, nohup,
      // `</dev/null`): nothing else may be listening then, so it must stay ref'ed. It is cleared as soon as
      // a stop arrives, so quitting does not wait out the interval.
      await Promise.race([stopped, new Promise((r) => (timer = setTimeout(r, intervalMs)))]);
      clearTimeout(timer);
    }
  } finally {
    clearTimeout(timer);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    if (rawable) {
      io.input.off("data", onKey);
      io.input.setRawMode(false);
      io.input.pause();
    }
    if (tty) io.out.write("\n");
  }
}

function footer(intervalMs: number): string {
  return `refreshing every ${intervalMs / 1000} s · ${new Date().toISOString()} · press q to quit\n`;
}
