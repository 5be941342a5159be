import { describe, expect, it } from "vitest";
import { parseSqliteUrl } from "../../src/broker/embedded/url.ts";
import { ConfigError } from "../../src/errors.ts";

describe("parseSqliteUrl", () => {
  it("reads an absolute path after three slashes", () => {
    expect(parseSqliteUrl("sqlite:///var/lib/qworker/qworker.db", "/somewhere")).toEqual({
      path: "/var/lib/qworker/qworker.db",
      displayUrl: "sqlite:///var/lib/qworker/qworker.db",
    });
  });

  it("resolves a relative path against the working directory", () => {
    expect(parseSqliteUrl("sqlite://data/q.db", "/home/me/app")).toEqual({
      path: "/home/me/app/data/q.db",
      displayUrl: "sqlite:///home/me/app/data/q.db",
    });
    expect(parseSqliteUrl("sqlite://./q.db", "/app").path).toBe("/app/q.db");
    expect(parseSqliteUrl("sqlite://../shared/q.db", "/app/sub").path).toBe("/app/shared/q.db");
  });

  it("defaults to process.cwd()", () => {
    expect(parseSqliteUrl("sqlite://x.db").path).toBe(`${process.cwd()}/x.db`);
  });

  it("normalizes the path and decodes percent-escapes", () => {
    expect(parseSqliteUrl("sqlite:///a//b/./c/../q.db").path).toBe("/a/b/q.db");
    expect(parseSqliteUrl("sqlite:///tmp/my%20queue.db").path).toBe("/tmp/my queue.db");
  });

  it("accepts the scheme in any case", () => {
    expect(parseSqliteUrl("SQLite:///tmp/q.db").path).toBe("/tmp/q.db");
  });

  it.each([
    ["redis://localhost:6379", /not a SQLite broker URL/],
    ["sqlite:/tmp/q.db", /not a SQLite broker URL/],
    ["sqlite://", /names no file/],
    ["sqlite:///", /names no file/],
    ["sqlite:///tmp/dir/", /names no file/],
    ["sqlite:///tmp/q.db?mode=ro", /query string/],
    ["sqlite:///tmp/q.db#x", /query string or fragment/],
    ["sqlite:///tmp/%zz.db", /percent-escape/],
    ["sqlite:///tmp/a%00b.db", /NUL/],
  ])("rejects %s with a ConfigError", (url, message) => {
    expect(() => parseSqliteUrl(url, "/cwd")).toThrow(ConfigError);
    expect(() => parseSqliteUrl(url, "/cwd")).toThrow(message);
  });
});
