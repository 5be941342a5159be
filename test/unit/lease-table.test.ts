import { describe, expect, it } from "vitest";
import { LeaseTable } from "../../src/worker/lease-table.ts";

interface Rec {
  id: string;
  slot: number;
}
const rec = (id: string): Rec => ({ id, slot: -1 });

describe("LeaseTable", () => {
  it("adds and removes records by identity", () => {
    const table = new LeaseTable<Rec>();
    const a = rec("a");
    const b = rec("b");
    table.add(a);
    table.add(b);
    expect(table.size).toBe(2);
    expect(table.has(a)).toBe(true);
    expect(table.has(b)).toBe(true);
    expect(table.remove(a)).toBe(true);
    expect(table.has(a)).toBe(false);
    expect(a.slot).toBe(-1);
    expect(table.values()).toEqual([b]);
    expect(table.size).toBe(1);
  });

  it("ignores a second add or remove of the same record", () => {
    const table = new LeaseTable<Rec>();
    const a = rec("a");
    table.add(a);
    table.add(a);
    expect(table.size).toBe(1);
    expect(table.remove(a)).toBe(true);
    expect(table.remove(a)).toBe(false);
    expect(table.size).toBe(0);
  });

  it("never removes a record that only looks like one in the table", () => {
    const table = new LeaseTable<Rec>();
    const a = rec("a");
    table.add(a);
    const stranger = { id: "a", slot: a.slot };
    expect(table.has(stranger)).toBe(false);
    expect(table.remove(stranger)).toBe(false);
    expect(table.has(a)).toBe(true);
  });

  it("keeps two leases with one id apart (a task recovered while its old run goes on)", () => {
    const table = new LeaseTable<Rec>();
    const old = rec("same");
    const fresh = rec("same");
    table.add(old);
    table.add(fresh);
    expect(table.remove(old)).toBe(true);
    expect(table.values()).toEqual([fresh]);
  });

  it("reuses freed slots, so the slots stay as many as the records held at once", () => {
    const table = new LeaseTable<Rec>();
    const held = Array.from({ length: 10 }, (_, i) => rec(`r${i}`));
    for (const r of held) table.add(r);
    for (let round = 0; round < 1000; round++) {
      const r = held[round % held.length]!;
      table.remove(r);
      const next = rec(`n${round}`);
      table.add(next);
      held[round % held.length] = next;
      expect(next.slot).toBeLessThan(10);
    }
    expect(table.size).toBe(10);
    expect(new Set(table.values())).toEqual(new Set(held));
  });

  it("values() is a copy: removing while iterating it visits every record", () => {
    const table = new LeaseTable<Rec>();
    const all = ["a", "b", "c", "d"].map(rec);
    for (const r of all) table.add(r);
    const seen: string[] = [];
    for (const r of table.values()) {
      seen.push(r.id);
      table.remove(r);
    }
    expect(seen.sort()).toEqual(["a", "b", "c", "d"]);
    expect(table.size).toBe(0);
  });

  it("drops the slots a burst left behind once empty, and works on afterwards", () => {
    const table = new LeaseTable<Rec>();
    const burst = Array.from({ length: 5000 }, (_, i) => rec(`b${i}`));
    for (const r of burst) table.add(r);
    for (const r of burst) table.remove(r);
    expect(table.size).toBe(0);
    const a = rec("a");
    table.add(a);
    expect(a.slot).toBe(0);
    expect(table.values()).toEqual([a]);
    // A record from before the compaction is not mistaken for the one now in its old slot.
    expect(table.has(burst[0]!)).toBe(false);
  });
});
