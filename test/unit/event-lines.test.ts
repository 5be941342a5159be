import { describe, expect, it } from "vitest";
import { EventLineBuffer } from "../../src/events/event-lines.ts";
import { eventLinesOf, eventTexts } from "../support/event-lines.ts";

const line = (i: number, pad = 0) => JSON.stringify({ i, pad: "x".repeat(pad) });

describe("EventLineBuffer", () => {
  it("hands back every line in order across many chunks, as UTF-8 lines joined by newlines", () => {
    const b = new EventLineBuffer();
    const texts = Array.from({ length: 2000 }, (_, i) => line(i, i % 7 === 0 ? 300 : 10));
    texts[5] = JSON.stringify({ i: 5, s: "é😀\u2028" }); // multi-byte characters survive the byte form
    for (const t of texts) b.push(t);
    expect(b.count).toBe(2000);
    const out = b.take();
    expect(out.count).toBe(2000);
    expect(eventTexts(out)).toEqual(texts);
    expect(out.data.toString("utf8")).toBe(texts.join("\n"));
    expect(b.count).toBe(0);
    expect(b.take()).toMatchObject({ count: 0 });
  });

  it("puts a failed payload back in front of what came since", () => {
    const b = new EventLineBuffer();
    for (let i = 0; i < 3; i++) b.push(line(i));
    const first = b.take();
    b.push(line(3));
    b.putBack(first);
    expect(b.count).toBe(4);
    expect(eventTexts(b.take()).map((t) => (JSON.parse(t) as { i: number }).i)).toEqual([0, 1, 2, 3]);
  });

  it("drops the oldest lines beyond a bound, and counts them", () => {
    const b = new EventLineBuffer();
    for (let i = 0; i < 5000; i++) b.push(line(i, 100)); // ~115 characters each: several sealed chunks
    const dropped = b.dropOldest(1000);
    expect(dropped).toBe(4000);
    expect(b.count).toBe(1000);
    const kept = eventTexts(b.take()).map((t) => (JSON.parse(t) as { i: number }).i);
    expect(kept).toEqual(Array.from({ length: 1000 }, (_, k) => 4000 + k));
    expect(b.dropOldest(10)).toBe(0);
  });

  it("eventLinesOf and eventTexts are inverses", () => {
    expect(eventTexts(eventLinesOf(["a", "b"]))).toEqual(["a", "b"]);
    expect(eventTexts(eventLinesOf([]))).toEqual([]);
  });
});

describe("EventLineBuffer.dropOldest", () => {
  it("cuts inside a chunk and inside the open lines exactly", () => {
    for (const [n, max] of [[5000, 4321], [10, 3], [5000, 0]] as const) {
      const b = new EventLineBuffer();
      for (let i = 0; i < n; i++) b.push(line(i, 100));
      expect(b.dropOldest(max)).toBe(n - max);
      expect(eventTexts(b.take()).map((t) => (JSON.parse(t) as { i: number }).i)).toEqual(Array.from({ length: max }, (_, k) => n - max + k));
    }
  });
});

describe("EventLineBuffer.recycle", () => {
  it("writes the next payload into a stored payload's memory, and never into one that was not handed back", () => {
    const b = new EventLineBuffer();
    b.push(line(1));
    const first = b.take();
    b.recycle(first);
    b.push(line(2));
    const second = b.take();
    expect(second.data.buffer).toBe(first.data.buffer);
    expect(eventTexts(second)).toEqual([line(2)]);

    // `second` is not handed back (its publish failed; the client may still hold it): its bytes stay as they are.
    const before = Buffer.from(second.data);
    b.putBack(second);
    b.push(line(3));
    const third = b.take();
    expect(third.data.buffer).not.toBe(second.data.buffer);
    expect(second.data.equals(before)).toBe(true);
    expect(eventTexts(third)).toEqual([line(2), line(3)]);
  });

  it("grows to fit a larger payload, and keeps no memory above 1 MB", () => {
    const b = new EventLineBuffer();
    b.push(line(1));
    const small = b.take();
    b.recycle(small);
    for (let i = 0; i < 2000; i++) b.push(line(i, 200)); // ~420 KB
    const large = b.take();
    expect(large.data.buffer).not.toBe(small.data.buffer);
    expect(eventTexts(large)).toHaveLength(2000);
    b.recycle(large);
    b.push(line(1));
    expect(b.take().data.buffer).toBe(large.data.buffer);

    for (let i = 0; i < 6000; i++) b.push(line(i, 200)); // ~1.3 MB
    const huge = b.take();
    b.recycle(huge);
    b.push(line(1));
    expect(b.take().data.buffer).not.toBe(huge.data.buffer);
  });
});
