/**
 * A CommonJS app (what `npm init -y` makes: "type": "commonjs") loads qworker with require(), as Node 20.19+
 * lets it load an ES module. The package's exports named an "import" entry only, so require("qworker")
 * failed with ERR_PACKAGE_PATH_NOT_EXPORTED ("No "exports" main defined"), while tsc passed the same import.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT, cleanEnv, start } from "./embedded-procs.ts";

const dir = mkdtempSync(path.join(os.tmpdir(), "qworker-e2e-require-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const requireEsm = (() => {
  const [major, minor] = process.versions.node.split(".").map(Number) as [number, number];
  return major > 22 || (major === 22 && minor >= 12) || (major === 20 && minor >= 19);
})();

describe.skipIf(!requireEsm)("a CommonJS app", () => {
  it("require('qworker') gives the library API, and a send on the embedded broker works", async () => {
    mkdirSync(path.join(dir, "node_modules"));
    symlinkSync(ROOT, path.join(dir, "node_modules", "qworker"));
    writeFileSync(path.join(dir, "package.json"), '{ "type": "commonjs" }\n');
    const db = path.join(dir, "broker.db");
    writeFileSync(
      path.join(dir, "app.js"),
      `const { createClient, defineTask, taskContext } = require("qworker");
console.log(typeof createClient, typeof defineTask, typeof taskContext);
(async () => {
  const client = await createClient({ brokerUrl: ${JSON.stringify(`sqlite://${db}`)} });
  const ref = await client.send("demo.add", [2, 3]);
  console.log(ref.id.length);
  await client.close();
})();
`,
    );
    const run = start([path.join(dir, "app.js")], { cwd: dir, env: cleanEnv() });
    const exited = await Promise.race([run.exited, new Promise((r) => setTimeout(() => r("still running after 20 s"), 20_000))]);
    await run.kill();
    expect(run.stderr()).toBe("");
    expect(exited).toBe(0);
    expect(run.stdout()).toBe("function function function\n36\n");
  }, 40_000);
});
