import type { Transport } from "../transport.ts";
import { SqliteTransport, type SqliteTransportOptions } from "./sqlite-transport.ts";
import { parseSqliteUrl } from "./url.ts";

export { SqliteTransport, revokedResult, type SqliteTransportOptions } from "./sqlite-transport.ts";
export { parseSqliteUrl, type SqliteLocation } from "./url.ts";
export { SCHEMA_VERSION } from "./schema.ts";

/** A transport for `sqlite:///abs/path.db` or `sqlite://relative/path.db`; call connect() before use. */
export function createSqliteTransport(url: string, opts?: SqliteTransportOptions): Transport {
  return new SqliteTransport(parseSqliteUrl(url), opts);
}
