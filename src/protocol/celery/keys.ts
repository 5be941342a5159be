/**
 * kombu's Redis key layout (kombu 5.2, `kombu/transport/redis.py`) and the Celery Redis result backend's
 * key names (`celery/backends/base.py` KeyValueStoreBackend). Pure functions: nothing here talks to Redis.
 *
 * `prefix` is kombu's `global_keyprefix` transport option (default ""). kombu applies it to every broker
 * key (queue lists, bindings, unacked*), not to result keys, which the result backend names on its own.
 */

/** kombu's separator inside priority list names and binding members: the two bytes 0x06 0x16. */
export const KOMBU_SEP = "\x06\x16";

/** kombu's `PRIORITY_STEPS`: a message priority is rounded down to one of these. Lower is served first. */
export const PRIORITY_STEPS = [0, 3, 6, 9] as const;
export const MIN_PRIORITY = 0;
export const MAX_PRIORITY = 9;

/** Celery's default queue, exchange and routing key are all named "celery". */
export const DEFAULT_QUEUE = "celery";

/** kombu's ack-emulation keys. qworker does not use them, but must not collide with them either. */
export const UNACKED_KEY = "unacked";
export const UNACKED_INDEX_KEY = "unacked_index";
export const UNACKED_MUTEX_KEY = "unacked_mutex";
/** Seconds the restore mutex is held (kombu `unacked_mutex_expire`). */
export const UNACKED_MUTEX_EXPIRE_S = 300;
/** kombu's default `visibility_timeout` in seconds. */
export const DEFAULT_VISIBILITY_TIMEOUT_S = 3600;

/** Result backend key prefixes (Celery 5.2). A task's result key doubles as its pub/sub channel. */
export const TASK_META_PREFIX = "celery-task-meta-";
export const GROUP_META_PREFIX = "celery-taskset-meta-";
/** Celery's default `result_expires`: one day. */
export const DEFAULT_RESULT_EXPIRES_S = 86_400;

/** Clamp to 0..9 like kombu's `_get_message_priority`, treating anything non-numeric as 0. */
export function clampPriority(priority: number | null | undefined): number {
  if (typeof priority !== "number" || !Number.isFinite(priority)) return MIN_PRIORITY;
  return Math.min(MAX_PRIORITY, Math.max(MIN_PRIORITY, Math.trunc(priority)));
}

/** The step a priority lands on (kombu `Channel.priority`): 0,1,2→0; 3,4,5→3; 6,7,8→6; 9→9. */
export function priorityStep(priority: number | null | undefined): number {
  const p = clampPriority(priority);
  let step: number = PRIORITY_STEPS[0];
  for (const s of PRIORITY_STEPS) if (s <= p) step = s;
  return step;
}

/** The Redis list a message of this priority is LPUSHed to (kombu `_q_for_pri`). */
export function queueListKey(queue: string, priority: number | null | undefined = 0, prefix = ""): string {
  const step = priorityStep(priority);
  return step === 0 ? `${prefix}${queue}` : `${prefix}${queue}${KOMBU_SEP}${step}`;
}

/** The four lists of one queue, highest priority (step 0) first. */
export function queueListKeys(queue: string, prefix = ""): string[] {
  return PRIORITY_STEPS.map((step) => queueListKey(queue, step, prefix));
}

/**
 * Keys in the order kombu's BRPOP names them: for each priority step, every queue
 * (`[q for pri in steps for q in queues]`), so priority wins over queue order.
 */
export function brpopKeys(queues: readonly string[], prefix = ""): string[] {
  return PRIORITY_STEPS.flatMap((step) => queues.map((q) => queueListKey(q, step, prefix)));
}

/** Map a popped list key back to its queue name, as kombu does: cut at the last separator. */
export function queueFromListKey(key: string, prefix = ""): string {
  const unprefixed = prefix && key.startsWith(prefix) ? key.slice(prefix.length) : key;
  const at = unprefixed.lastIndexOf(KOMBU_SEP);
  return at === -1 ? unprefixed : unprefixed.slice(0, at);
}

/** `_kombu.binding.<exchange>`: the set kombu consults to find the queues a restored message goes back to. */
export function bindingKey(exchange: string, prefix = ""): string {
  return `${prefix}_kombu.binding.${exchange}`;
}

/** A binding member: `routing_key SEP pattern SEP queue` (pattern is empty for direct exchanges). */
export function bindingMember(routingKey: string, queue: string, pattern = ""): string {
  return [routingKey, pattern, queue].join(KOMBU_SEP);
}

export interface KombuBinding {
  routingKey: string;
  pattern: string;
  queue: string;
}

export function parseBindingMember(member: string): KombuBinding {
  const parts = member.split(KOMBU_SEP);
  return { routingKey: parts[0] ?? "", pattern: parts[1] ?? "", queue: parts[2] ?? "" };
}

/** `celery-task-meta-<id>`: the result string key, and also the channel the result is PUBLISHed on. */
export function resultKey(taskId: string): string {
  return `${TASK_META_PREFIX}${taskId}`;
}

/** The pub/sub channel `AsyncResult.get()` SUBSCRIBEs to: identical to the result key. */
export const resultChannel = resultKey;

export function groupResultKey(groupId: string): string {
  return `${GROUP_META_PREFIX}${groupId}`;
}

/**
 * Fanout exchanges are pub/sub channels (kombu `_get_publish_topic`): `/<db>.<exchange>`, or
 * `/<db>.<exchange>/<routing_key>` when a routing key is given (kombu's default `fanout_patterns`),
 * e.g. events go to `/0.celeryev/worker.heartbeat`.
 */
export function fanoutChannel(db: number, exchange: string, routingKey?: string, prefix = ""): string {
  const base = `${prefix}/${db}.${exchange}`;
  return routingKey ? `${base}/${routingKey}` : base;
}
