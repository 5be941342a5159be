import { describe, expect, it } from "vitest";
import { RecentRevokes } from "../../src/worker/recent-revokes.ts";

describe("RecentRevokes", () => {
  it("remembers ids for its lifetime, then forgets them", () => {
    const r = new RecentRevokes(1000, 100);
    expect(r.has("a", 0)).toBe(false);
    r.note(["a", "b"], undefined, 0);
    expect(r.has("a", 999)).toBe(true);
    expect(r.has("c", 999)).toBe(false);
    expect(r.has("a", 1000)).toBe(false);
    r.note(["c"], undefined, 500);
    r.prune(1000);
    expect(r.size).toBe(1);
    expect(r.has("c", 1000)).toBe(true);
  });

  it("a second revoke of an id renews it past the first's expiry, and pruning drops only the expired id", () => {
    const r = new RecentRevokes(1000, 100);
    r.note(["a", "b"], undefined, 0);
    r.note(["a"], undefined, 800);
    r.prune(1000);
    expect(r.has("b", 1000)).toBe(false);
    expect(r.has("a", 1700)).toBe(true);
    expect(r.size).toBe(1);
  });

  it("a revoke with a shorter TTL of its own is forgotten when the broker forgets it; a longer one is capped", () => {
    const r = new RecentRevokes(1000, 100);
    r.note(["short"], 300, 0);
    r.note(["long"], 5000, 0);
    expect(r.has("short", 299)).toBe(true);
    expect(r.has("short", 300)).toBe(false);
    expect(r.has("long", 999)).toBe(true);
    expect(r.has("long", 1000)).toBe(false);
    r.prune(400);
    expect(r.size).toBe(1);
  });

  it("an id heard again with a shorter TTL keeps the later expiry it had", () => {
    const r = new RecentRevokes(1000, 100);
    r.note(["forever"], undefined, 0);
    r.note(["forever"], 200, 100);
    expect(r.has("forever", 500)).toBe(true);
    expect(r.has("forever", 1000)).toBe(false);
    r.note(["brief"], 200, 0);
    r.note(["brief"], undefined, 100);
    expect(r.has("brief", 1099)).toBe(true);
  });

  it("pruning looks past a live entry: with TTLs of their own, ids heard later can expire sooner", () => {
    const r = new RecentRevokes(1000, 100);
    r.note(["long"], undefined, 0);
    r.note(["short"], 100, 0);
    r.prune(200);
    expect(r.size).toBe(1);
    expect(r.has("long", 200)).toBe(true);
  });

  it("keeps at most its cap, dropping the oldest", () => {
    const r = new RecentRevokes(60_000, 3);
    r.note(["a", "b", "c"], undefined, 0);
    r.note(["d", "e"], undefined, 1);
    expect(r.size).toBe(3);
    expect(["a", "b", "c", "d", "e"].filter((id) => r.has(id, 2))).toEqual(["c", "d", "e"]);
  });
});
