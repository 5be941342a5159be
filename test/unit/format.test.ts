import { describe, expect, it } from "vitest";
import { messagePreview } from "../../src/worker/format.ts";

describe("messagePreview (an error message in a worker's log line)", () => {
  it("leaves a short one-line message as it is", () => {
    expect(messagePreview("boom")).toBe("boom");
    expect(messagePreview("x".repeat(300))).toBe("x".repeat(300));
    expect(messagePreview("")).toBe("");
  });

  it("cuts a long message to its first characters, with an ellipsis and the whole length", () => {
    const huge = "y".repeat(20 * 1024 * 1024);
    const shown = messagePreview(huge);
    expect(shown).toBe(`${"y".repeat(300)}… (20971520 characters)`);
    expect(messagePreview("abcdefghij", 4)).toBe("abcd… (10 characters)");
  });

  it("keeps only the first line of a message of several (a CRLF's CR too)", () => {
    expect(messagePreview("first line\nsecond line")).toBe("first line… (22 characters)");
    expect(messagePreview("first\r\nsecond")).toBe("first… (13 characters)");
    // The first line with text: Prisma's messages start with a newline (this showed only "… (94 characters)").
    expect(messagePreview("\nafter an empty first line")).toBe("after an empty first line");
    expect(messagePreview("\nInvalid `prisma.user.create()` invocation:\n\nUnique constraint failed")).toBe("Invalid `prisma.user.create()` invocation:… (69 characters)");
    // A first line longer than the cap is cut like any long message.
    expect(messagePreview(`${"z".repeat(10)}\nrest`, 4)).toBe("zzzz… (15 characters)");
  });
});
