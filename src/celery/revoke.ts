import type { Logger } from "pino";
import { z } from "zod";
import { closeConnection, openConnection } from "../broker/redis/connection.ts";
import { parseRedisUrl } from "../broker/redis/url.ts";
import type { Transport } from "../broker/transport.ts";
import { decodeCeleryMessage, fanoutChannel, peekCeleryIdentity } from "../protocol/celery/index.ts";

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

/** Prefix of the lease ids a qworker worker holds Celery messages under (see `leaseQueue`'s queues). */
const LEASE_PREFIX = "celery:";

/**
 * `qworker revoke` takes Celery task ids, and also the `celery:…` ids that `inspect active`/`scheduled`
 * show for Celery messages: each such id that names a Celery message in the broker is replaced by the
 * message's Celery task id, so the revoke is the same as revoking that id (the worker holds the message
 * by lease, but checks and reports revokes by task id). Revoking the lease id itself would finish a parked
 * or recovered message with a qworker result that no Celery client reads. Ids not found stay as given.
 */
export async function celeryTaskIdsOf(transport: Transport, ids: string[]): Promise<{ ids: string[]; resolved: [lease: string, task: string][] }> {
  const resolved: [string, string][] = [];
  const out: string[] = [];
  for (const id of ids) {
    const taskId = id.startsWith(LEASE_PREFIX) ? await celeryTaskIdOfLease(transport, id) : undefined;
    if (taskId !== undefined) resolved.push([id, taskId]);
    const use = taskId ?? id;
    if (!out.includes(use)) out.push(use);
  }
  return { ids: out, resolved };
}

async function celeryTaskIdOfLease(transport: Transport, leaseId: string): Promise<string | undefined> {
  const where = transport.describeTask ? await transport.describeTask(leaseId) : null;
  if (!where) return undefined;
  try {
    return decodeCeleryMessage(where.payload).id;
  } catch {
    // Dead-lettered because it could not be decoded: the id may still be readable.
    return peekCeleryIdentity(where.payload).id;
  }
}
