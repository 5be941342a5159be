import type { RedisOptions } from "ioredis";
import { ConfigError } from "../../errors.ts";

/**
 * Redis broker URLs. Besides ioredis's own `redis://` and `rediss://`, a Sentinel-managed Redis is named by
 * its sentinels and master name, so one URL string (a config value, an env var, a CLI flag) reaches it:
 *
 *   redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/master-name[/db][?sentinel_password=…]
 *
 * The credentials are the master's (ACL user and password); `sentinel_password` / `sentinel_username`
 * authenticate to the sentinels when they require it. `rediss+sentinel://` uses TLS for the master and the
 * sentinels alike. Sentinel's default port is 26379.
 *
 * A Redis Cluster is named by some of its nodes (the client discovers the rest):
 *
 *   redis+cluster://[[user]:password@]host[:port][,host[:port]…]
 *
 * A cluster has only database 0, so the URL has no db. `rediss+cluster://` uses TLS.
 */
const SENTINEL = /^(rediss?)\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)(?:\/([^/?#]*))?(?:\/([^/?#]*))?\/?(?:\?([^#]*))?$/i;
const CLUSTER = /^(rediss?)\+cluster:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?#]+)\/?$/i;
const SENTINEL_PORT = 26379;
const FORM = "redis+sentinel://host:26379[,host:26379…]/master-name[/db]";
const CLUSTER_FORM = "redis+cluster://host:6379[,host:6379…]";
const PLAIN_FORM = "redis://[[user]:password@]host[:port][/db]";

/** Whether the URL names a Redis broker (plain, TLS, through Sentinel, or a Cluster). */
export function isRedisUrl(url: string): boolean {
  return /^rediss?(\+sentinel|\+cluster)?:\/\//i.test(url);
}

export function isSentinelUrl(url: string): boolean {
  return /^rediss?\+sentinel:\/\//i.test(url);
}

export function isClusterUrl(url: string): boolean {
  return /^rediss?\+cluster:\/\//i.test(url);
}

/**
 * What ioredis needs: the URL itself for a plain Redis, options for one behind Sentinel, start-up nodes
 * and per-node options for a Cluster.
 */
export type RedisTarget =
  | { kind: "url"; url: string; db: number }
  | { kind: "sentinel"; options: RedisOptions; db: number }
  | { kind: "cluster"; nodes: { host: string; port: number }[]; nodeOptions: RedisOptions; db: 0 };

export function parseRedisUrl(url: string): RedisTarget {
  if (isClusterUrl(url)) return parseClusterUrl(url);
  if (!isSentinelUrl(url)) return { kind: "url", url, db: plainDb(url) };
  const m = SENTINEL.exec(url);
  if (!m) throw new ConfigError(`invalid Sentinel URL ${maskUrlCredentials(url)}: expected ${FORM}`);
  const [, scheme, username, password, hostList, name, dbText, query] = m;
  if (!name) throw new ConfigError(`Sentinel URL ${maskUrlCredentials(url)} names no master: expected ${FORM}`);
  const sentinels = hostList!.split(",").map((h) => sentinelAddress(h, url));
  const db = dbNumber(dbText, `Sentinel URL ${maskUrlCredentials(url)}`, FORM);
  const params = new URLSearchParams(query ?? "");
  for (const key of params.keys()) {
    if (key !== "sentinel_password" && key !== "sentinel_username") {
      throw new ConfigError(`Sentinel URL ${maskUrlCredentials(url)}: unknown option "${key}" (known: sentinel_password, sentinel_username)`);
    }
  }
  const tls = scheme!.toLowerCase() === "rediss";
  const options: RedisOptions = {
    sentinels,
    name: decodeURIComponent(name),
    db,
    ...(username ? { username: decodeURIComponent(username) } : {}),
    ...(password ? { password: decodeURIComponent(password) } : {}),
    ...(params.get("sentinel_password") ? { sentinelPassword: params.get("sentinel_password")! } : {}),
    ...(params.get("sentinel_username") ? { sentinelUsername: params.get("sentinel_username")! } : {}),
    ...(tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
  };
  return { kind: "sentinel", options, db };
}

function parseClusterUrl(url: string): RedisTarget {
  const m = CLUSTER.exec(url);
  if (!m) throw new ConfigError(`invalid Cluster URL ${maskUrlCredentials(url)}: expected ${CLUSTER_FORM} (a cluster has no database number or options)`);
  const [, scheme, username, password, hostList] = m;
  const nodes = hostList!.split(",").map((h) => hostAddress(h, 6379, `Cluster URL ${maskUrlCredentials(url)}`, CLUSTER_FORM));
  const nodeOptions: RedisOptions = {
    ...(username ? { username: decodeURIComponent(username) } : {}),
    ...(password ? { password: decodeURIComponent(password) } : {}),
    ...(scheme!.toLowerCase() === "rediss" ? { tls: {} } : {}),
  };
  return { kind: "cluster", nodes, nodeOptions, db: 0 };
}

function sentinelAddress(text: string, url: string): { host: string; port: number } {
  return hostAddress(text, SENTINEL_PORT, `Sentinel URL ${maskUrlCredentials(url)}`, FORM);
}

function hostAddress(text: string, defaultPort: number, what: string, form: string): { host: string; port: number } {
  // [::1]:26379 or host:26379 or host
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d+))?$/.exec(text.trim());
  if (!m) throw new ConfigError(`${what}: cannot read address "${text}": expected ${form}`);
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (port < 1 || port > 65535) throw new ConfigError(`${what}: port ${port} is out of range`);
  return { host: (m[1] ?? m[2])!, port };
}

/**
 * The db of a redis:// or rediss:// URL, read as ioredis will read it (the path after "/", else a `db` query
 * option). ioredis parseInt()s whatever is there: "abc" became SELECT NaN, which crashed the process with a
 * raw ReplyError, and "-1" or "1x" were sent as they were or cut short; and a URL that is not one at all
 * only failed inside `new Redis()`, as a broker error with no word on where the value came from.
 */
function plainDb(url: string): number {
  const what = `Redis URL ${maskUrlCredentials(url)}`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    const port = /^[a-z+]+:\/\/(?:[^@/?#]*@)?(?:\[[^\]]*\]|[^:/?#[\]]*):([^/?#]*)/i.exec(url)?.[1];
    const why = port !== undefined && !/^\d*$/.test(port) ? `port "${port}" is not a number` : "it cannot be read as a URL";
    throw new ConfigError(`invalid ${what}: ${why}: expected ${PLAIN_FORM} (percent-encode special characters in a password)`);
  }
  const path = parsed.pathname.replace(/^\//, "");
  if (path !== "") return dbNumber(path.replace(/\/$/, ""), what, PLAIN_FORM);
  return dbNumber(parsed.searchParams.get("db") ?? undefined, what, PLAIN_FORM);
}

/** The largest db SELECT takes; Redis answers "value is not an integer or out of range" above it. */
const MAX_DB = 2 ** 31 - 1;

/** A URL's database number: digits only, so what ioredis sends in SELECT is what the URL says. */
function dbNumber(text: string | undefined, what: string, form: string): number {
  if (text === undefined || text === "") return 0;
  if (!/^\d+$/.test(text)) throw new ConfigError(`${what}: database "${text}" is not a number from 0 up: expected ${form}`);
  const db = Number(text);
  if (db > MAX_DB) throw new ConfigError(`${what}: database ${text} is out of range (Redis numbers them from 0 to ${MAX_DB} at most)`);
  return db;
}

/** A Sentinel or Cluster URL with its passwords (the nodes' and the sentinels') replaced. */
export function maskUrlCredentials(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:****@").replace(/(sentinel_password=)[^&#]*/i, "$1****");
}
