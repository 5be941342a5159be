import { parseDocument } from "yaml";
import { configSchema, retryPolicySchema } from "./schema.ts";
import { suggest } from "./suggest.ts";

/** QWORKER_* variables that are not settings but are read elsewhere (the CLI entry point, health, pools). */
const OTHER_VARIABLES = new Set(["QWORKER_CONFIG", "QWORKER_FROM_SOURCE", "QWORKER_HEALTH_DIR", "QWORKER_POOL_TSX"]);

/** Mappings whose keys can also be set one by one, as QWORKER_<KEY>_<SUBKEY> (QWORKER_RETRY_MAX). */
const NESTED: Record<string, string[]> = { retry: Object.keys(retryPolicySchema.shape) };

export function envName(key: string): string {
  return `QWORKER_${key.toUpperCase()}`;
}

export interface EnvSettings {
  /** QWORKER_<KEY> for every top-level key; values are read as YAML scalars, lists as comma-separated. */
  values: Record<string, unknown>;
  /** QWORKER_<KEY>_<SUBKEY> of the NESTED mappings, by key. */
  nested: Record<string, Record<string, unknown>>;
  /** Variables that look like a misspelt setting (within 2 edits of one), with the one meant. */
  unknown: { name: string; meant: string }[];
}

export function readEnv(env: NodeJS.ProcessEnv): EnvSettings {
  const values: Record<string, unknown> = {};
  const nested: Record<string, Record<string, unknown>> = {};
  const known = new Set(OTHER_VARIABLES);
  for (const key of Object.keys(configSchema.shape)) {
    known.add(envName(key));
    const raw = env[envName(key)];
    if (raw !== undefined && raw !== "") values[key] = valueOf(key, raw);
  }
  for (const [key, subs] of Object.entries(NESTED)) {
    for (const sub of subs) {
      const name = envName(`${key}_${sub}`);
      known.add(name);
      const raw = env[name];
      if (raw !== undefined && raw !== "") (nested[key] ??= {})[sub] = parseScalar(raw);
    }
  }
  // Only near-misses are reported: other QWORKER_* names may belong to the app or its tests. Two edits
  // turn one short word into another (PORT into POOL), so short names must be one edit off.
  const unknown: { name: string; meant: string }[] = [];
  const settings = [...known].map((k) => k.slice("QWORKER_".length));
  for (const name of Object.keys(env)) {
    if (!name.startsWith("QWORKER_") || known.has(name)) continue;
    const word = name.slice("QWORKER_".length);
    const meant = suggest(word, settings, word.length <= 6 ? 1 : 2);
    if (meant) unknown.push({ name, meant: `QWORKER_${meant}` });
  }
  return { values, nested, unknown };
}

function valueOf(key: string, raw: string): unknown {
  if (key === "queues") return raw.split(",").map((s) => s.trim()).filter(Boolean);
  if (key === "broker_url" || key === "tasks_dir" || key === "redis_prefix" || key === "default_queue" || key === "metrics_host") return raw;
  return parseScalar(raw);
}

function parseScalar(raw: string): unknown {
  try {
    return parseDocument(raw).toJS() as unknown;
  } catch {
    return raw;
  }
}
