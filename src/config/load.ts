import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { isRedisUrl, maskUrlCredentials } from "../broker/redis/url.ts";
import { ConfigError } from "../errors.ts";
import { envName, readEnv } from "./env.ts";
import { suggest } from "./suggest.ts";
import { plainZodMessage } from "./zod-words.ts";
import { configSchema, DEFAULT_BROKER_URL, type QWorkerConfig } from "./schema.ts";

export const DEFAULT_CONFIG_PATH = "config/qworker.yaml";

/** Config keys whose command-line flag is not simply --<key-with-dashes>, so errors name the real flag. */
const FLAG_NAMES: Partial<Record<string, string>> = { broker_url: "--broker", tasks_dir: "--tasks" };

export interface LoadOptions {
  /** --config; otherwise QWORKER_CONFIG; otherwise config/qworker.yaml if it exists. */
  configPath?: string;
  /** Values from command-line flags, already named as config keys; they win over everything. */
  overrides?: Partial<Record<keyof QWorkerConfig, unknown>>;
  /** Where an override came from, for errors (default: the command-line flag of that name). */
  overrideSource?: (key: string) => string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface LoadedConfig {
  config: QWorkerConfig & { broker_url: string };
  /** The YAML file read, if any. */
  file?: string;
  /** True when broker_url came from the built-in default (the embedded broker). */
  defaultBroker: boolean;
  /** True when tasks_dir came from the built-in default (no flag, variable or file set it). */
  defaultTasksDir: boolean;
  /** QWORKER_* variables that look like a misspelt setting, with the setting meant (a worker warns). */
  unknownEnv: { name: string; meant: string }[];
}

/**
 * Resolve configuration with the precedence flag > environment > YAML file > built-in default, and
 * validate it in one go so the error names where the bad value came from.
 */
export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const explicit = opts.configPath ?? env.QWORKER_CONFIG;
  const file = explicit ? resolve(cwd, explicit) : resolve(cwd, DEFAULT_CONFIG_PATH);
  const sources = new Map<string, string>();

  let fromFile: Record<string, unknown> = {};
  if (existsSync(file)) {
    fromFile = readYaml(file, explicit ?? DEFAULT_CONFIG_PATH);
    for (const key of Object.keys(fromFile)) sources.set(key, explicit ?? DEFAULT_CONFIG_PATH);
  } else if (explicit) {
    throw new ConfigError(`config file ${explicit} not found: check --config or QWORKER_CONFIG`);
  }

  const { values: fromEnv, nested, unknown: unknownEnv } = readEnv(env);
  for (const key of Object.keys(fromEnv)) sources.set(key, `environment variable ${envName(key)}`);
  // QWORKER_RETRY_MAX and the like set one key of a mapping: merged over the file's mapping, not replacing it.
  for (const [key, parts] of Object.entries(nested)) {
    const base = fromEnv[key] ?? fromFile[key];
    fromEnv[key] = { ...(typeof base === "object" && base !== null && !Array.isArray(base) ? base : {}), ...parts };
    for (const sub of Object.keys(parts)) sources.set(`${key}.${sub}`, `environment variable ${envName(`${key}_${sub}`)}`);
  }
  const fromFlags = Object.fromEntries(Object.entries(opts.overrides ?? {}).filter(([, v]) => v !== undefined));
  const flagSource = (key: string) => `option ${FLAG_NAMES[key] ?? `--${key.replace(/_/g, "-")}`}`;
  for (const key of Object.keys(fromFlags)) sources.set(key, (opts.overrideSource ?? flagSource)(key));

  const merged = { ...fromFile, ...fromEnv, ...fromFlags };
  const parsed = configSchema.safeParse(merged);
  if (!parsed.success) throw describeIssue(parsed.error.issues[0]!, merged, sources);
  const config = parsed.data;
  const url = config.broker_url ?? DEFAULT_BROKER_URL;
  if (config.enqueue_min_replicas > 0 && !isRedisUrl(url)) {
    const from = sources.get("enqueue_min_replicas") ?? "config";
    throw new ConfigError(`${from}: key "enqueue_min_replicas" needs a Redis broker with replicas, not ${url}: remove it, or set broker_url to a Redis URL`);
  }
  return {
    config: { ...config, broker_url: config.broker_url ?? DEFAULT_BROKER_URL },
    ...(existsSync(file) ? { file } : {}),
    defaultBroker: config.broker_url === undefined,
    defaultTasksDir: merged.tasks_dir === undefined,
    unknownEnv,
  };
}

function readYaml(path: string, shown: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read ${shown}: ${(err as Error).message}`);
  }
  // prettyErrors would put a multi-line excerpt in the message; a LineCounter gives the position alone.
  const lines = new LineCounter();
  const doc = parseDocument(text, { prettyErrors: false, lineCounter: lines });
  const err = doc.errors[0];
  if (err) {
    const at = lines.linePos(err.pos[0]);
    const where = at ? ` at line ${at.line}, column ${at.col}` : "";
    throw new ConfigError(`${shown}: invalid YAML${where}: ${err.message.split("\n")[0]}`);
  }
  const data: unknown = doc.toJS();
  if (data === null || data === undefined) return {};
  if (typeof data !== "object" || Array.isArray(data)) {
    throw new ConfigError(`${shown}: expected a mapping of settings (key: value), found ${describe(data)}`);
  }
  return data as Record<string, unknown>;
}

function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (Array.isArray(value)) return `a list (${JSON.stringify(value)})`;
  if (value === null) return "null";
  if (typeof value === "object") return "a mapping";
  return `${typeof value} ${JSON.stringify(value)}`;
}

function describeIssue(issue: z.core.$ZodIssue, merged: Record<string, unknown>, sources: Map<string, string>): ConfigError {
  const top = String(issue.path[0] ?? "");
  const source = sources.get(issue.path.map(String).join(".")) ?? sources.get(top) ?? "configuration";
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "?";
    // Nested (retry.bogus): the full path, so the user finds it, and the source of its top-level key.
    const at = issue.path.map(String);
    const hint = suggest(key, keysAt(at));
    const from = at.length > 0 ? source : (sources.get(key) ?? source);
    return new ConfigError(`${from}: unknown key "${[...at, key].join(".")}"${hint ? ` (did you mean "${[...at, hint].join(".")}"?)` : ""}`);
  }
  const path = issue.path.map(String).join(".");
  let found: unknown = merged;
  for (const part of issue.path) found = (found as Record<string | number, unknown> | undefined)?.[part as string];
  // A broker URL can carry a password, and this message goes to logs and terminals.
  if (issue.path.at(-1) === "broker_url" && typeof found === "string") found = maskUrlCredentials(found);
  // zod says "Invalid input: expected number, received string"; the "found" part below says it better.
  const expected = plainZodMessage(issue.message);
  return new ConfigError(`${source}: key "${path}": ${expected}, found ${describe(found)}`);
}

/** The keys the schema allows in the mapping at `path` (none when it is not a plain mapping). */
function keysAt(path: string[]): string[] {
  const unwrap = (s: unknown): unknown => (s instanceof z.ZodDefault || s instanceof z.ZodOptional ? unwrap(s.unwrap()) : s);
  let schema: unknown = configSchema;
  for (const part of path) {
    const obj = unwrap(schema);
    schema = obj instanceof z.ZodObject ? (obj.shape as Record<string, unknown>)[part] : undefined;
  }
  const obj = unwrap(schema);
  return obj instanceof z.ZodObject ? Object.keys(obj.shape) : [];
}
