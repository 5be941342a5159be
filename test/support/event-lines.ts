import type { EventLines } from "../../src/broker/transport.ts";

/** Event texts as the payload a recorder hands to publishActivity. */
export function eventLinesOf(texts: readonly string[]): EventLines {
  return { data: Buffer.from(texts.join("\n")), count: texts.length };
}

/** The JSON texts of a payload. */
export function eventTexts(lines: EventLines): string[] {
  return lines.count === 0 ? [] : lines.data.toString("utf8").split("\n");
}
