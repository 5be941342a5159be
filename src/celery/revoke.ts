import type { Logger } from "pino";
import { z } from "zod";
import { closeConnection, openConnection } from "../broker/redis/connection.ts";
import { parseRedisUrl } from "../broker/redis/url.ts";
import { fanoutChannel } from "../protocol/celery/index.ts";

/**
 * Celery's `app.control.revoke(id, terminate=…)` is a broadcast: kombu PUBLISHes an envelope on the
 * pidbox fanout channel `/<db>.celery.pidbox`, whose body is `{"method": "revoke", "arguments":
 * {"task_id": id | [ids], "terminate": bool, …}, "destination": null | [nodes], …}`. We follow the
 * broadcasts addressed to everyone; replies (which only `inspect`-style calls wait for) are not sent.
 */

const envelopeSchema = z.looseObject({
  body: z.string(),
  properties: z.looseObject({ body_encoding: z.string().nullish() }).nullish(),
});

const commandSchema = z.looseObject({
  method: z.string(),
  arguments: z
    .looseObject({
      task_id: z.union([z.string(), z.array(z.string())]).optional(),
      terminate: z.boolean().nullish(),
    })
    .nullish(),
  destination: z.array(z.string()).nullish(),
});

/** Parse one pidbox message; returns the revoked ids, or undefined for anything else. */
export function parseRevoke(message: string): { ids: string[]; terminate: boolean } | undefined {
  let envelope: z.infer<typeof envelopeSchema>;
  try {
    envelope = envelopeSchema.parse(JSON.parse(message));
  } catch {
    return undefined;
  }
  const text = envelope.properties?.body_encoding === "base64" ? Buffer.from(envelope.body, "base64").toString("utf8") : envelope.body;
  let command: z.infer<typeof commandSchema>;
  try {
    command = commandSchema.parse(JSON.parse(text));
  } catch {
    return undefined;
  }
  // A revoke addressed to named Celery nodes is not for us.
  if (command.method !== "revoke" || (command.destination && command.destination.length > 0)) return undefined;
  const raw = command.arguments?.task_id;
  const ids = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return { ids, terminate: command.arguments?.terminate === true };
}

/** Subscribe to the pidbox channel; resolves with a stop function. */
export async function listenForRevokes(
  url: string,
  logger: Logger,
  onRevoke: (ids: string[], terminate: boolean) => Promise<void>,
  keyPrefix = "",
): Promise<() => Promise<void>> {
  const channel = fanoutChannel(parseRedisUrl(url).db, "celery.pidbox", undefined, keyPrefix);
  const sub = await openConnection(url, { connectTimeoutMs: 3000, failFast: false }, "qworker-celery-pidbox");
  sub.on("message", (ch: string, message: string) => {
    if (ch !== channel) return;
    const revoke = parseRevoke(message);
    if (revoke) onRevoke(revoke.ids, revoke.terminate).catch((err: unknown) => logger.error(`could not record a Celery revoke: ${(err as Error).message}`));
  });
  await sub.subscribe(channel);
  return async () => {
    await closeConnection(sub);
  };
}
