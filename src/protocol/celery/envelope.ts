import { z } from "zod";
import { MessageError, quoteValue } from "../../errors.ts";
import { excessiveNesting } from "../json-depth.ts";
import { MAX_NAME_LENGTH } from "../message.ts";
import { clampPriority } from "./keys.ts";
import { parseIsoDateTime, type NaiveTimezone } from "./time.ts";

/**
 * Decoding of the kombu message envelope a Celery producer LPUSHes onto a Redis list, into one
 * normalized, validated request. Protocol v2 (task metadata in `headers`, body `[args, kwargs, embed]`)
 * and protocol v1 (empty headers, everything in a body object) are both read. Only JSON bodies are
 * accepted: like a default Celery worker (`accept_content = ["json"]`), pickle/yaml/msgpack are refused.
 */

/** The canvas part of a v2 body. Non-null members mean workflows qworker does not run itself. */
export interface CeleryEmbed {
  callbacks: unknown[] | null;
  errbacks: unknown[] | null;
  chain: unknown[] | null;
  chord: unknown | null;
}

export interface CeleryTaskRequest {
  protocolVersion: 1 | 2;
  /** Task id (the result key is derived from it). */
  id: string;
  /** Registered task name to run. */
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  /** Do not run before this time (epoch ms). */
  eta: number | undefined;
  /** Do not run after this time (epoch ms); store REVOKED/"expired" instead. */
  expires: number | undefined;
  /** Retries already made (0 on the first delivery). */
  retries: number;
  rootId: string | undefined;
  parentId: string | undefined;
  group: string | undefined;
  groupIndex: number | undefined;
  /** Display-only alternative name. */
  shadow: string | undefined;
  /** `timelimit` header, converted from seconds: [hard, soft] on the wire, named here. */
  hardTimeLimitMs: number | undefined;
  softTimeLimitMs: number | undefined;
  ignoreResult: boolean;
  replyTo: string | undefined;
  correlationId: string | undefined;
  /** Message priority clamped to 0..9 (0 is served first on Redis). */
  priority: number;
  deliveryInfo: { exchange: string; routingKey: string };
  /** kombu's per-push tag; needed only to interoperate with kombu's `unacked` hash. */
  deliveryTag: string | undefined;
  /** True when kombu restored the message after an unacked delivery. */
  redelivered: boolean;
  origin: string | undefined;
  lang: string | undefined;
  argsrepr: string | undefined;
  kwargsrepr: string | undefined;
  embed: CeleryEmbed;
  /** True when the message carries link/link_error/chain/chord work that qworker does not perform. */
  hasWorkflow: boolean;
  /** Every header as received (v2), including ones qworker does not interpret. Empty for v1. */
  headers: Record<string, unknown>;
}

export interface DecodeOptions {
  /** How to read a datetime without offset. Celery uses the worker timezone; default "utc". */
  naiveTimezone?: NaiveTimezone;
}

/** Content types Celery/kombu may use, named so the rejection says which serializer the sender used. */
const KNOWN_SERIALIZERS: Record<string, string> = {
  "application/x-python-serialize": "pickle",
  "application/x-yaml": "yaml",
  "application/x-msgpack": "msgpack",
  "application/data": "raw bytes",
  "application/text": "raw text",
};

const objectSchema = z.record(z.string(), z.unknown());

const envelopeSchema = z.looseObject({
  body: z.string({ error: "body must be a string" }),
  "content-type": z.string({ error: "content-type must be a string" }),
  "content-encoding": z.string().nullish(),
  headers: objectSchema.nullish(),
  properties: z.looseObject({
    body_encoding: z.string().nullish(),
    delivery_tag: z.string().nullish(),
    correlation_id: z.string().nullish(),
    reply_to: z.string().nullish(),
    priority: z.number().nullish(),
    delivery_info: z
      .looseObject({
        exchange: z.string().nullish(),
        routing_key: z.string().nullish(),
        redelivered: z.boolean().nullish(),
      })
      .nullish(),
  }),
});

const optString = z.string().nullish();
const seconds = z.number().nonnegative().nullish();

/**
 * Fields common to v2 headers and v1 bodies. The id and task name are held to what the worker's own message
 * keeps: a longer one (Celery has no limit) was refused by the worker after this decode had accepted it, and
 * dead-lettered without the FAILURE result a waiting Celery client needs; refused here, it gets one.
 */
const tooLong = `is longer than ${MAX_NAME_LENGTH} characters, the most a qworker worker keeps`;
const metaShape = {
  id: z.string().min(1, "id is empty").max(MAX_NAME_LENGTH, `id ${tooLong}`),
  task: z.string().min(1, "task name is empty").max(MAX_NAME_LENGTH, `task name ${tooLong}`),
  eta: optString,
  expires: optString,
  group: optString,
  group_index: z.number().int().nullish(),
  retries: z.number().int().nonnegative().nullish(),
  timelimit: z.array(seconds).length(2, "must be [hard, soft]").nullish(),
  root_id: optString,
  parent_id: optString,
  shadow: optString,
  origin: optString,
  lang: optString,
  argsrepr: optString,
  kwargsrepr: optString,
  ignore_result: z.boolean().nullish(),
};

const v2HeadersSchema = z.looseObject(metaShape);

const v1BodySchema = z.looseObject({
  ...metaShape,
  args: z.array(z.unknown(), { error: "args must be a list" }).nullish(),
  kwargs: objectSchema.nullish(),
  taskset: optString,
  utc: z.boolean().nullish(),
  callbacks: z.array(z.unknown()).nullish(),
  errbacks: z.array(z.unknown()).nullish(),
  chord: z.unknown().optional(),
});

const embedSchema = z
  .looseObject({
    callbacks: z.array(z.unknown()).nullish(),
    errbacks: z.array(z.unknown()).nullish(),
    chain: z.array(z.unknown()).nullish(),
    chord: z.unknown().optional(),
  })
  .nullish();

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Check a v2 body `[args, kwargs, embed]`; `[args, kwargs]` is tolerated on read (a Celery worker crashes on it). */
function checkV2Body(payload: unknown): { args: unknown[]; kwargs: Record<string, unknown>; embed: z.infer<typeof embedSchema> } {
  const shape = "protocol 2 body must be a JSON list [args, kwargs, embed]";
  if (!Array.isArray(payload)) fail(`${shape}, got ${payload === null ? "null" : typeof payload}`);
  if (payload.length !== 3 && payload.length !== 2) fail(`${shape}, got ${payload.length} element(s)`);
  const [args, kwargs, embed] = payload as [unknown, unknown, unknown];
  if (!Array.isArray(args)) fail(`${shape}: args (element 0) must be a list`);
  if (!isPlainObject(kwargs)) fail(`${shape}: kwargs (element 1) must be an object`);
  const e = embedSchema.safeParse(embed);
  if (!e.success) fail(firstIssue(e.error, "body[2] (embed)"));
  return { args, kwargs, embed: e.data };
}

function fail(reason: string): never {
  throw new MessageError(`celery message: ${reason}`);
}

function firstIssue(error: z.ZodError, where: string): string {
  const issue = error.issues[0];
  if (!issue) return `${where} is invalid`;
  const path = issue.path.length > 0 ? `${where}.${issue.path.join(".")}` : where;
  return `${path}: ${issue.message}`;
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeBody(body: string, bodyEncoding: string | null | undefined, contentEncoding: string | null | undefined): string {
  const enc = contentEncoding?.toLowerCase().replace(/[-_]/g, "");
  if (enc !== undefined && enc !== "utf8" && enc !== "") {
    fail(`content-encoding ${quoteValue(contentEncoding)} is not supported (only utf-8)`);
  }
  if (bodyEncoding === null || bodyEncoding === undefined) return body;
  if (bodyEncoding !== "base64") fail(`properties.body_encoding ${quoteValue(bodyEncoding)} is not supported (only base64)`);
  if (!BASE64_RE.test(body)) fail("body is not valid base64");
  try {
    return utf8.decode(Buffer.from(body, "base64"));
  } catch {
    return fail("body is not valid UTF-8 after base64 decoding");
  }
}

function toDate(value: string | null | undefined, field: string, naive: NaiveTimezone): number | undefined {
  if (value === null || value === undefined || value === "") return undefined;
  const ms = parseIsoDateTime(value, naive);
  if (ms === undefined) fail(`${field} ${quoteValue(value)} is not an ISO-8601 datetime`);
  return ms;
}

function secondsToMs(value: number | null | undefined): number | undefined {
  if (value === null || value === undefined || value === 0) return undefined;
  // A number of seconds so large that it overflows in ms (1e306) is the longest limit there is, not
  // Infinity: that was written as null in the worker's message, which dead-lettered it as malformed. The
  // worker holds any limit to the longest a timer can wait (timerMs), as it does any long one.
  const ms = Math.round(value * 1000);
  return Number.isFinite(ms) ? ms : Number.MAX_SAFE_INTEGER;
}

function orUndef<T>(value: T | null | undefined): T | undefined {
  return value === null ? undefined : value;
}

/** Parse the raw list entry into its envelope object and decoded body text, checking the content type. */
function openEnvelope(raw: string | Buffer): { envelope: z.infer<typeof envelopeSchema>; payload: unknown } {
  let text: string;
  if (typeof raw === "string") text = raw;
  else {
    try {
      text = utf8.decode(raw);
    } catch {
      return fail("envelope is not valid UTF-8");
    }
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return fail(`envelope is not valid JSON (${(err as Error).message})`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) fail("envelope is not a JSON object");
  // The consumer writes parts of it back (the qworker message, headers on a retry): it must be able to.
  const deepEnvelope = excessiveNesting(data, text);
  if (deepEnvelope !== undefined) fail(`envelope ${deepEnvelope}, more than a worker can write back`);
  const parsed = envelopeSchema.safeParse(data);
  if (!parsed.success) fail(firstIssue(parsed.error, "envelope"));
  const envelope = parsed.data;

  const contentType = envelope["content-type"].split(";")[0]!.trim().toLowerCase();
  if (contentType !== "application/json") {
    const name = KNOWN_SERIALIZERS[contentType];
    fail(
      `content-type ${quoteValue(envelope["content-type"])}${name ? ` (${name})` : ""} is not accepted; ` +
        "only application/json is (configure the Celery producer with serializer='json')",
    );
  }
  const bodyText = decodeBody(envelope.body, envelope.properties.body_encoding, envelope["content-encoding"]);
  let payload: unknown;
  try {
    payload = JSON.parse(bodyText);
  } catch (err) {
    return fail(`body is not valid JSON (${(err as Error).message})`);
  }
  const deepBody = excessiveNesting(payload, bodyText);
  if (deepBody !== undefined) fail(`body ${deepBody}, more than a worker can write back`);
  return { envelope, payload };
}

/**
 * Decode one raw kombu Redis list entry into a CeleryTaskRequest.
 * Throws MessageError with a one-line reason when the entry cannot be run.
 */
export function decodeCeleryMessage(raw: string | Buffer, options: DecodeOptions = {}): CeleryTaskRequest {
  const naive = options.naiveTimezone ?? "utc";
  const { envelope, payload } = openEnvelope(raw);
  const props = envelope.properties;
  const headers = envelope.headers ?? {};
  const isV2 = typeof headers["task"] === "string";

  let meta: z.infer<typeof v2HeadersSchema>;
  let args: unknown[];
  let kwargs: Record<string, unknown>;
  let embed: CeleryEmbed;
  let version: 1 | 2;

  if (isV2 && !isPlainObject(payload)) {
    version = 2;
    const h = v2HeadersSchema.safeParse(headers);
    if (!h.success) fail(firstIssue(h.error, "headers"));
    meta = h.data;
    const { args: a, kwargs: k, embed: e } = checkV2Body(payload);
    args = a;
    kwargs = k;
    embed = {
      callbacks: orUndef(e?.callbacks) ?? null,
      errbacks: orUndef(e?.errbacks) ?? null,
      chain: orUndef(e?.chain) ?? null,
      chord: orUndef(e?.chord) ?? null,
    };
  } else {
    // Protocol 1, or a "hybrid" message (v2 headers with a v1-style body), which Celery also accepts:
    // the body carries the fields and any headers override them.
    if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
      fail(isV2 ? "body must be a JSON object or list" : "headers.task is missing and the body is not a protocol 1 task object");
    }
    const merged = isV2 ? { ...(payload as Record<string, unknown>), ...headers } : (payload as Record<string, unknown>);
    if (typeof merged["task"] !== "string") fail("headers.task is missing and the body has no task name (not a Celery task message)");
    const p = v1BodySchema.safeParse(merged);
    if (!p.success) fail(firstIssue(p.error, "body"));
    version = isV2 ? 2 : 1;
    const v1 = p.data;
    meta = { ...v1, group: v1.group ?? v1.taskset };
    args = v1.args ?? [];
    kwargs = v1.kwargs ?? {};
    embed = { callbacks: v1.callbacks ?? null, errbacks: v1.errbacks ?? null, chain: null, chord: v1.chord ?? null };
  }

  const deliveryInfo = props.delivery_info ?? {};
  const [hard, soft] = meta.timelimit ?? [null, null];
  return {
    protocolVersion: version,
    id: meta.id,
    task: meta.task,
    args,
    kwargs,
    eta: toDate(meta.eta, "eta", naive),
    expires: toDate(meta.expires, "expires", naive),
    retries: meta.retries ?? 0,
    rootId: orUndef(meta.root_id),
    parentId: orUndef(meta.parent_id),
    group: orUndef(meta.group),
    groupIndex: orUndef(meta.group_index),
    shadow: orUndef(meta.shadow),
    hardTimeLimitMs: secondsToMs(hard),
    softTimeLimitMs: secondsToMs(soft),
    ignoreResult: meta.ignore_result ?? false,
    replyTo: orUndef(props.reply_to) || undefined,
    correlationId: orUndef(props.correlation_id),
    priority: clampPriority(props.priority),
    deliveryInfo: { exchange: deliveryInfo.exchange ?? "", routingKey: deliveryInfo.routing_key ?? "" },
    deliveryTag: orUndef(props.delivery_tag),
    redelivered: headers["redelivered"] === true || deliveryInfo.redelivered === true,
    origin: orUndef(meta.origin),
    lang: orUndef(meta.lang),
    argsrepr: orUndef(meta.argsrepr),
    kwargsrepr: orUndef(meta.kwargsrepr),
    embed,
    hasWorkflow: embed.callbacks !== null || embed.errbacks !== null || embed.chain !== null || embed.chord !== null,
    headers: version === 2 ? { ...headers } : {},
  };
}

/**
 * What `qworker dead` and `inspect` show for a Celery message held under a `celery:…` lease: task name,
 * Celery task id and retries, from the v2 headers or else a v1 body (base64 or not). Takes the parsed
 * envelope so a caller that already parsed the payload does not parse it twice. Never throws: a payload
 * is often dead because it is malformed.
 */
export function celeryMessageSummary(envelope: unknown): { id?: string; task?: string; retries?: number } {
  if (!isPlainObject(envelope)) return {};
  const headers = isPlainObject(envelope["headers"]) ? envelope["headers"] : {};
  let meta: Record<string, unknown> = headers;
  if (typeof headers["task"] !== "string" && typeof envelope["body"] === "string") {
    const props = isPlainObject(envelope["properties"]) ? envelope["properties"] : {};
    try {
      const text = props["body_encoding"] === "base64" ? Buffer.from(envelope["body"], "base64").toString("utf8") : envelope["body"];
      const body: unknown = JSON.parse(text);
      // Protocol 1 (or a hybrid message): the fields are in the body, headers override them.
      if (isPlainObject(body)) meta = { ...body, ...headers };
    } catch {
      // Not JSON (pickle, yaml, garbage): only the headers can say anything.
    }
  }
  const { id, task, retries } = meta;
  return {
    ...(typeof id === "string" && id !== "" ? { id } : {}),
    ...(typeof task === "string" && task !== "" ? { task } : {}),
    ...(typeof retries === "number" && Number.isSafeInteger(retries) && retries >= 0 ? { retries } : {}),
  };
}

/**
 * The least a worker needs to store a result for a message it cannot run (unknown content type, broken
 * body): the task id and name if they can be found in the headers. Never throws.
 */
export function peekCeleryIdentity(raw: string | Buffer): { id?: string; task?: string } {
  try {
    const data = JSON.parse(typeof raw === "string" ? raw : raw.toString("utf8")) as { headers?: Record<string, unknown> };
    const h = data.headers ?? {};
    return {
      ...(typeof h["id"] === "string" ? { id: h["id"] } : {}),
      ...(typeof h["task"] === "string" ? { task: h["task"] } : {}),
    };
  } catch {
    return {};
  }
}

/**
 * The Celery task id of a stored message: decoded like a worker decodes it, else (a message dead-lettered
 * because it could not be decoded) read from its headers. Undefined when neither finds one.
 */
export function celeryTaskIdOf(raw: string): string | undefined {
  try {
    return decodeCeleryMessage(raw).id;
  } catch {
    return peekCeleryIdentity(raw).id;
  }
}
