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
