import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll } from "vitest";
import { createSqliteTransport } from "../../src/broker/embedded/index.ts";
import { runConformanceSuite } from "./conformance/suite.ts";

// One database file for this test file; every transport the suite opens is a separate connection to it,
// as separate worker processes would be.
const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-conf-sqlite-"));
const url = `sqlite://${path.join(dir, "broker", "qworker.db")}`;

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

runConformanceSuite("sqlite", async (settings) => {
  const transport = createSqliteTransport(url, { ...settings });
  return { transport, cleanup: () => transport.close() };
});

// The same contract where file watching is unavailable: blocked calls fall back to polling data_version.
runConformanceSuite("sqlite (polling, no file watch)", async (settings) => {
  const transport = createSqliteTransport(url, { ...settings, watchFiles: false });
  return { transport, cleanup: () => transport.close() };
});
