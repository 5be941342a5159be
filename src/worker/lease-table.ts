/** An empty table with more slots than this drops them (see compact). */
const COMPACT_ABOVE = 1024;

/** What the table needs of a record: a field it owns, holding the record's place (-1 when not in a table). */
export interface Slotted {
  slot: number;
}

/**
 * The tasks a worker holds leases for, from reservation to settlement.
 *
 * Not a `Map` keyed by lease id, because of how V8 collects garbage. A Map under constant churn (a busy
 * worker adds and deletes tens of thousands of entries a second) rebuilds its hash table every few hundred
 * operations; V8 copies the live entries into the new table but leaves them in the discarded one, and once a
 * long-lived Map's table is in the old generation its replacements are allocated there too. Every discarded
 * table then keeps the records it held reachable for minor collections, which promote them, with their
 * messages and payloads, to wait for a full collection. In a 40,000-task drain the scavenges promoted 87-91 MB
 * with the Map and 60-63 MB with this table (bench/README.md).
 *
 * Here each record sits in a slot of one array that lives as long as the worker; removing a record empties
 * its slot, so nothing dead points at it. Adding, removing and membership are O(1) through the record's own
 * `slot` field and allocate nothing. Lookups by id are linear scans, which is fine for what needs them
 * (revokes, lease losses, shutdown): they are rare, and the table holds at most concurrency + prefetch
 * records. Records are compared by identity, so two leases with one id (a task recovered while its old
 * run is still going) are two entries.
 */
export class LeaseTable<T extends Slotted> {
  private readonly slots: (T | undefined)[] = [];
  /** Empty slots below slots.length, reused last-freed first. */
  private readonly free: number[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(record: T): void {
    if (this.has(record)) return;
    const slot = this.free.length > 0 ? this.free.pop()! : this.slots.length;
    this.slots[slot] = record;
    record.slot = slot;
    this.count++;
  }

  /** False if the record was not in the table (already removed, or never added). */
  remove(record: T): boolean {
    if (!this.has(record)) return false;
    this.slots[record.slot] = undefined;
    this.free.push(record.slot);
    record.slot = -1;
    this.count--;
    if (this.count === 0 && this.slots.length > COMPACT_ABOVE) this.compact();
    return true;
  }

  has(record: T): boolean {
    const s = record.slot;
    return s >= 0 && s < this.slots.length && this.slots[s] === record;
  }

  /** The records now in the table, in no particular order (a copy: safe to remove while iterating it). */
  values(): T[] {
    const out: T[] = [];
    for (const r of this.slots) if (r !== undefined) out.push(r);
    return out;
  }

  /** Once empty, drop the slots a burst (a large prefetch) left behind, so scans stay short. */
  private compact(): void {
    this.slots.length = 0;
    this.free.length = 0;
  }
}
