import type { TaskMessage } from "../protocol/message.ts";
import type { TaskOptions } from "../tasks/definition.ts";

/** Stored previews stay small: results and events are kept by the thousand. */
export const ARGS_PREVIEW_MAX = 1024;
export const MASK = "«secret»";

/**
 * The arguments as one line of JSON for results and events, with secret ones replaced by a mask and the
 * whole capped at `max` characters. The mask is applied before the cap, so a secret can never leak
 * through truncation.
 */
export function argsPreview(
  args: unknown[],
  kwargs: Record<string, unknown>,
  secret: TaskOptions["secretArgs"],
  max = ARGS_PREVIEW_MAX,
): string {
  if (secret === true) return args.length === 0 && !hasKeys(kwargs) ? "[]" : MASK;
  let shown: unknown[];
  if (secret === undefined || secret.length === 0) {
    // Nothing to mask (the common case, once per task): encode the arguments as they are, no copies.
    shown = hasKeys(kwargs) ? [...args, kwargs] : args;
  } else {
    const hidden = new Set(secret);
    shown = args.map((a, i) => (hidden.has(i) ? MASK : a));
    if (hasKeys(kwargs)) {
      const shownKwargs: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(kwargs)) shownKwargs[k] = hidden.has(k) ? MASK : v;
      shown.push(shownKwargs);
    }
  }
  let text: string;
  try {
    text = JSON.stringify(shown) ?? "[]";
  } catch {
    text = "[unserializable]";
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function hasKeys(o: Record<string, unknown>): boolean {
  for (const k in o) if (Object.hasOwn(o, k)) return true;
  return false;
}

const byMessage = new WeakMap<TaskMessage, string>();

/**
 * The preview of a task message's arguments, built once per message: the received event and the stored
 * result both show it, and each would otherwise JSON-encode the arguments again on the per-task path.
 * A shorter `max` is cut from the full preview, which is already masked, so the mask-before-cap rule holds.
 */
export function messageArgsPreview(msg: TaskMessage, secret: TaskOptions["secretArgs"], max = ARGS_PREVIEW_MAX): string {
  let full = byMessage.get(msg);
  if (full === undefined) {
    full = argsPreview(msg.args, msg.kwargs, secret);
    byMessage.set(msg, full);
  }
  return full.length > max ? `${full.slice(0, max - 1)}…` : full;
}
