/**
 * The one place Redis key names are built in TypeScript. The Lua scripts build the same names from the
 * prefix (see the header of lua/enqueue.lua); keep the two in step.
 */
export class Keys {
  constructor(readonly prefix: string) {}
  get queues() {
    return `${this.prefix}queues`;
  }
  get workers() {
    return `${this.prefix}workers`;
  }
  get revoked() {
    return `${this.prefix}revoked`;
  }
  /** Which held revokes terminate (revoke.lua): ids scored by expiry, like `revoked`. */
  get revokedTerminate() {
    return `${this.prefix}revoked:terminate`;
  }
  get control() {
    return `${this.prefix}control`;
  }
  worker(id: string) {
    return `${this.prefix}w:${id}`;
  }
  job(id: string) {
    return `${this.prefix}j:${id}`;
  }
  result(id: string) {
    return `${this.prefix}r:${id}`;
  }
  ready(q: string) {
    return `${this.prefix}q:${q}:ready`;
  }
  delayed(q: string) {
    return `${this.prefix}q:${q}:delayed`;
  }
  active(q: string) {
    return `${this.prefix}q:${q}:active`;
  }
  dead(q: string) {
    return `${this.prefix}q:${q}:dead`;
  }
  wake(q: string) {
    return `${this.prefix}q:${q}:wake`;
  }
  /** Stream of task events (docs/events.md). */
  get events() {
    return `${this.prefix}events`;
  }
  /** Hash of per-task counters for one minute (minutes since the epoch). */
  counters(minute: number) {
    return `${this.prefix}m:${minute}`;
  }
}

/**
 * The key prefix on Redis Cluster. The scripts touch many keys in one atomic step, which a cluster allows
 * only within one hash slot, so every key must carry the same hash tag: a prefix without one gets it
 * (`qw:` becomes `{qw}:`). Every process applies the same rule, so they all find the same keys.
 */
export function clusterPrefix(prefix: string): string {
  if (/\{[^}]+\}/.test(prefix)) return prefix;
  return prefix.endsWith(":") ? `{${prefix.slice(0, -1)}}:` : `{${prefix}}`;
}
