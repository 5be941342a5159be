import path from "node:path";
import { ConfigError } from "../../errors.ts";

/**
 * Broker URLs for the embedded transport:
 *   sqlite:///abs/path/qworker.db   absolute path (three slashes: empty host, then "/abs/...")
 *   sqlite://relative/path.db       relative to the working directory
 * Percent-escapes in the path are decoded; a query string or fragment is rejected (no options exist yet),
 * so a typo does not silently become part of the file name.
 */
export interface SqliteLocation {
  /** Absolute file path of the database. */
  path: string;
  /** URL with the resolved absolute path, for logs and banners (SQLite URLs carry no secrets). */
  displayUrl: string;
}

const PREFIX = "sqlite://";

export function parseSqliteUrl(url: string, cwd: string = process.cwd()): SqliteLocation {
  if (!url.toLowerCase().startsWith(PREFIX)) {
    throw new ConfigError(`not a SQLite broker URL: "${url}" (expected sqlite:///abs/path.db or sqlite://relative/path.db)`);
  }
  const rest = url.slice(PREFIX.length);
  if (/[?#]/.test(rest)) {
    throw new ConfigError(`SQLite broker URL "${url}" has a query string or fragment; none is supported`);
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    throw new ConfigError(`SQLite broker URL "${url}" has a malformed percent-escape`);
  }
  if (decoded.includes("\0")) {
    throw new ConfigError(`SQLite broker URL "${url}" contains a NUL byte`);
  }
  const isAbsolute = decoded.startsWith("/");
  const trimmed = isAbsolute ? decoded : decoded.replace(/^\.\//, "");
  if (trimmed === "" || trimmed === "/" || trimmed.endsWith("/")) {
    throw new ConfigError(`SQLite broker URL "${url}" names no file (expected sqlite:///abs/path.db or sqlite://relative/path.db)`);
  }
  const filePath = isAbsolute ? path.normalize(decoded) : path.resolve(cwd, decoded);
  return { path: filePath, displayUrl: `sqlite://${filePath}` };
}
