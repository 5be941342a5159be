import type { EventLines } from "../broker/transport.ts";

/**
 * Lines are joined in chunks of about this many characters. A V8 string above 128 KB lives in large-object
 * space: a fresh mapping and page faults on first touch. Joining a busy worker's ~1,000 events per flush
 * into one 200-600 KB string, which ioredis then copied into a still larger command string, cost 3-5 µs of
 * worker CPU per task in a 20,000-task drain (bench/README.md); 32 KB chunks stay young and cheap.
 */
const CHUNK_CHARS = 32 * 1024;

/**
 * A stored payload's memory is kept for the next one up to this size. A payload lives until the broker's
 * reply, long enough on a busy worker to be promoted out of V8's young generation; a fresh buffer per flush
 * then piles up as garbage until the next full collection: about 12 MB of peak RSS in a 20,000-task drain
 * (bench/README.md, "Memory"). Larger payloads (a backlog after an outage) are not kept pinned.
 */
const SPARE_MAX_BYTES = 1024 * 1024;
/** Spare room, so payloads a few bytes longer than the last one still fit. */
const ROUND_BYTES = 64 * 1024;

interface Chunk {
  /** Lines joined by "\n". */
  text: string;
  count: number;
}

/**
 * Task events waiting to be published. They are joined a chunk at a time and encoded once, straight into
 * the payload's buffer, so no large string is ever built.
 */
export class EventLineBuffer {
  private open: string[] = [];
  private openChars = 0;
  /** Joined chunks, oldest first. */
  private sealed: Chunk[] = [];
  /** Lines held, open and sealed. */
  count = 0;
  /** The memory of the last payload taken, until it is recycled or abandoned by the next take(). */
  private lent: Buffer | undefined;
  /** Memory of a stored payload, free for the next take(). */
  private spare: Buffer | undefined;

  push(line: string): void {
    this.open.push(line);
    this.openChars += line.length;
    this.count += 1;
    if (this.openChars >= CHUNK_CHARS) this.seal();
  }

  /**
   * Everything held, as one payload; the buffer is empty afterwards. The payload may be written into the
   * memory of an earlier one handed to recycle(), so it must not be read after it is recycled.
   */
  take(): EventLines {
    this.seal();
    const chunks = this.sealed;
    const count = this.count;
    this.sealed = [];
    this.count = 0;
    if (count === 0) return { data: Buffer.alloc(0), count: 0 };
    let bytes = chunks.length - 1; // the newlines between chunks
    for (const c of chunks) bytes += Buffer.byteLength(c.text);
    const data = this.memory(bytes).subarray(0, bytes);
    let at = 0;
    for (const c of chunks) {
      if (at > 0) data[at++] = 0x0a;
      at += data.write(c.text, at);
    }
    return { data, count };
  }

  /**
   * The broker has stored the last payload taken, and its client holds it no longer: its memory serves the
   * next take(). Only a stored payload is recycled: a call that failed may have been given up on while its
   * command still waits in the client to be (re)sent (a command timeout), and its bytes must not change.
   */
  recycle(lines: EventLines): void {
    const lent = this.lent;
    this.lent = undefined;
    if (lent !== undefined && lines.data.buffer === lent.buffer && lent.length <= SPARE_MAX_BYTES) this.spare = lent;
  }

  /** Put a payload that could not be published back in front (it goes out first next time). */
  putBack(lines: EventLines): void {
    if (lines.count === 0) return;
    this.seal();
    this.sealed.unshift({ text: lines.data.toString("utf8"), count: lines.count });
    this.count += lines.count;
  }

  /** Drop the oldest lines while more than `max` are held; returns how many went. */
  dropOldest(max: number): number {
    const excess = this.count - max;
    if (excess <= 0) return 0;
    let left = excess;
    while (left > 0 && this.sealed.length > 0) {
      const oldest = this.sealed[0]!;
      if (oldest.count <= left) {
        this.sealed.shift();
        left -= oldest.count;
        continue;
      }
      let at = 0;
      for (let k = 0; k < left; k++) at = oldest.text.indexOf("\n", at) + 1;
      this.sealed[0] = { text: oldest.text.slice(at), count: oldest.count - left };
      left = 0;
    }
    if (left > 0) for (const line of this.open.splice(0, left)) this.openChars -= line.length;
    this.count = max;
    return excess;
  }

  private memory(bytes: number): Buffer {
    const spare = this.spare;
    this.spare = undefined;
    const buf = spare !== undefined && spare.length >= bytes ? spare : Buffer.allocUnsafeSlow(Math.ceil((bytes + 1) / ROUND_BYTES) * ROUND_BYTES);
    this.lent = buf;
    return buf;
  }

  private seal(): void {
    if (this.open.length === 0) return;
    this.sealed.push({ text: this.open.join("\n"), count: this.open.length });
    this.open = [];
    this.openChars = 0;
  }
}
