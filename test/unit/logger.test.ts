import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createLogger, type LogLevel } from "../../src/log/logger.ts";

const NOW = Date.UTC(2030, 0, 1, 12, 0, 0, 5);

function sink() {
  const out: string[] = [];
  const stream = { isTTY: false, write: (s: string) => void out.push(s) } as unknown as NodeJS.WriteStream;
  return { out, stream, lines: () => out.join("").split("\n").filter(Boolean) };
}

/** The lines pino itself writes with the options createLogger used before plain lines were written directly. */
function viaPino(level: pino.Level, log: (l: pino.Logger) => void): string[] {
  const lines: string[] = [];
  const logger = pino(
    { level, base: undefined, formatters: { level: (label, number) => ({ level: number, levelName: label === "warn" ? "warning" : label }) } },
    { write: (s: string) => void lines.push(s) },
  );
  log(logger);
  return lines.join("").split("\n").filter(Boolean);
}

describe("createLogger (json)", () => {
  beforeEach(() => vi.useFakeTimers({ now: NOW, toFake: ["Date"] }));
  afterEach(() => vi.useRealTimers());

  const boom = new Error("boom");
  const calls = (l: pino.Logger) => {
    l.info("task bench.noop[3951a6f5-e145-45db-9577-cb6abefa805b] received");
    l.info('quote " backslash \\ newline \n tab \t control \u0001 emoji 😀 lone \ud800 sep \u2028');
    l.info("x".repeat(300));
    l.info("100%s done %d");
    l.info("");
    l.warn("slow down");
    l.error("broken");
    l.debug("hidden at info");
    l.info("with %s args", "formatted");
    l.info({ k: 1, err: boom }, "with fields");
    l.info({ only: true });
    l.child({ sub: "a" }).info("from a child");
    l.child({ sub: "b" }).warn("child %d", 7);
  };

  it.each(["info", "warning", "debug", "error"] as LogLevel[])("writes the same lines as pino at %s", (level) => {
    const s = sink();
    const { logger, flush } = createLogger(level, "json", s.stream);
    calls(logger);
    flush();
    const expected = viaPino(level === "warning" ? "warn" : level, calls);
    // The lone surrogate: pino writes it raw, which becomes U+FFFD once encoded; we keep JSON.stringify's escape.
    const parse = (lines: string[]) => lines.map((l) => JSON.parse(l.replace("\\ud800", "\ufffd").replace("\ud800", "\ufffd")) as Record<string, unknown>);
    expect(parse(s.lines())).toEqual(parse(expected));
    // Byte for byte wherever the surrogate is not involved.
    expect(s.lines().filter((l) => !l.includes("lone"))).toEqual(expected.filter((l) => !l.includes("lone")));
  });

  it("writes a busy turn's lines in pieces that never reach V8's large-string size, all of them in order", () => {
    const s = sink();
    const { logger, flush } = createLogger("info", "json", s.stream);
    for (let i = 0; i < 3000; i++) logger.info(`task bench.noop[${i}] ${"x".repeat(80)}`);
    flush();
    expect(s.out.length).toBeGreaterThan(3); // ~330 KB in one turn: not one write
    for (const piece of s.out) expect(piece.length).toBeLessThan(64 * 1024);
    expect(s.lines().map((l) => (JSON.parse(l) as { msg: string }).msg.split(" ")[1])).toEqual(Array.from({ length: 3000 }, (_, i) => `bench.noop[${i}]`));
  });

  it("keeps pino's behaviour when the level changes later", () => {
    const s = sink();
    const { logger, flush } = createLogger("info", "json", s.stream);
    logger.level = "error";
    logger.info("dropped");
    logger.error("kept");
    logger.level = "info";
    logger.info("back");
    flush();
    expect(s.lines().map((l) => (JSON.parse(l) as { msg: string; levelName: string }).msg)).toEqual(["kept", "back"]);
  });
});

describe("createLogger (pretty)", () => {
  beforeEach(() => vi.useFakeTimers({ now: NOW, toFake: ["Date"] }));
  afterEach(() => vi.useRealTimers());

  it("shows a record's own fields after the message as key=value (a task's logger.info({ orderId }, …))", () => {
    const s = sink();
    const { logger } = createLogger("info", "pretty", s.stream);
    logger.info({ orderId: 1234, to: "a@b.example", note: "two words", items: ["book", 2] }, "invoice sent");
    logger.info("task demo.add[1] received");
    expect(s.lines()).toEqual([
      `[12:00:00.005] INFO    invoice sent orderId=1234 to=a@b.example note="two words" items=["book",2]`,
      "[12:00:00.005] INFO    task demo.add[1] received",
    ]);
  });
});
