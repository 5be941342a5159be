import { describe, expect, it } from "vitest";
import { parseJsonOption, parseNumberOption } from "../../src/cli/json-option.ts";
import { UsageError } from "../../src/errors.ts";

function usageError(run: () => unknown): UsageError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).exitCode).toBe(2);
    expect((err as UsageError).message).not.toContain("\n");
    return err as UsageError;
  }
  throw new Error("expected a UsageError");
}

describe("parseJsonOption", () => {
  it("parses arrays and objects", () => {
    expect(parseJsonOption('[1234, "x", null]', "--args", "array")).toEqual([1234, "x", null]);
    expect(parseJsonOption('{"a": {"b": 1}}', "--kwargs", "object")).toEqual({ a: { b: 1 } });
  });

  it("malformed JSON: names the option and shows an example", () => {
    const err = usageError(() => parseJsonOption("[1234", "--args", "array"));
    expect(err.message).toMatch(/^--args is not valid JSON \(.+\); example: --args '\[1234, "x"\]'$/);
    expect(usageError(() => parseJsonOption("{a:1}", "--kwargs", "object")).message).toContain(`example: --kwargs '{"key": 1}'`);
  });

  it("valid JSON of the wrong shape", () => {
    expect(usageError(() => parseJsonOption("1234", "--args", "array")).message).toBe("--args must be a JSON array, found 1234");
    expect(usageError(() => parseJsonOption("[1]", "--kwargs", "object")).message).toBe("--kwargs must be a JSON object, found [1]");
    expect(usageError(() => parseJsonOption("null", "--kwargs", "object")).message).toBe("--kwargs must be a JSON object, found null");
  });
});

describe("parseNumberOption", () => {
  it("accepts numbers within range", () => {
    expect(parseNumberOption("2", "--countdown", { min: 0 })).toBe(2);
    expect(parseNumberOption("0.5", "--countdown", { min: 0 })).toBe(0.5);
    expect(parseNumberOption("9", "--priority", { integer: true, min: 0, max: 9 })).toBe(9);
  });

  it("rejects what is not a number, not an integer, or out of range", () => {
    expect(usageError(() => parseNumberOption("", "--countdown", { min: 0 })).message).toBe('--countdown expects a number >= 0, found ""');
    expect(usageError(() => parseNumberOption("soon", "--countdown", { min: 0 })).message).toContain('found "soon"');
    expect(usageError(() => parseNumberOption("1.5", "--priority", { integer: true, min: 0, max: 9 })).message).toBe(
      '--priority expects an integer from 0 to 9, found "1.5"',
    );
    expect(usageError(() => parseNumberOption("10", "--priority", { integer: true, min: 0, max: 9 })).message).toContain("from 0 to 9");
    expect(usageError(() => parseNumberOption("Infinity", "--countdown", {})).message).toContain("expects a number");
  });
});
