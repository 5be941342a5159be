/**
 * bin/qworker.js picks the compiled build (dist/) or the TypeScript sources (src/, through tsx). In a working
 * tree that depends on whether dist/ is at least as new as src/; in an installed copy (under node_modules) it
 * is always dist/, whatever times the install gave the files. Each layout here holds the real bin script and
 * a stand-in dist/cli/main.js and src/cli/main.ts that print which of the two ran.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BIN, ROOT, runCli } from "./helpers.ts";

const tmp = mkdtempSync(join(tmpdir(), "qworker-e2e-bin-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A package at `pkg` whose src/ is newer than its build stamp, as `npm i qworker-x.tgz` leaves it. */
function layout(pkg: string): string {
  mkdirSync(join(pkg, "bin"), { recursive: true });
  mkdirSync(join(pkg, "dist", "cli"), { recursive: true });
  mkdirSync(join(pkg, "src", "cli"), { recursive: true });
  copyFileSync(BIN, join(pkg, "bin", "qworker.js"));
  writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "qworker", type: "module" }));
  writeFileSync(join(pkg, "dist", "cli", "main.js"), `console.log("dist");\n`);
  writeFileSync(join(pkg, "src", "cli", "main.ts"), `const ran: string = "src";\nconsole.log(ran);\n`);
  writeFileSync(join(pkg, "dist", ".build-stamp"), "stamp");
  // tsx, for the sources, from this checkout's dependencies.
  symlinkSync(join(ROOT, "node_modules"), join(pkg, "node_modules"));
  const now = Date.now() / 1000;
  utimesSync(join(pkg, "dist", ".build-stamp"), now - 60, now - 60);
  utimesSync(join(pkg, "src", "cli", "main.ts"), now, now);
  return join(pkg, "bin", "qworker.js");
}

describe("bin/qworker.js: dist/ or src/", () => {
  const installed = layout(join(tmp, "project", "node_modules", "qworker"));
  const checkout = layout(join(tmp, "checkout", "qworker"));

  it("an installed copy runs dist/ even when its src/ files are newer than the build stamp", async () => {
    const r = await runCli(["--version"], { bin: installed, cwd: join(tmp, "project") });
    expect(r.stdout, r.stderr).toBe("dist\n");
    expect(r.code, r.stderr).toBe(0);
  });

  it("QWORKER_FROM_SOURCE=1 still runs an installed copy's src/", async () => {
    const r = await runCli(["--version"], { bin: installed, cwd: join(tmp, "project"), env: { QWORKER_FROM_SOURCE: "1" } });
    expect(r.stdout, r.stderr).toBe("src\n");
  });

  it("a working tree with src/ edited after the build runs src/", async () => {
    const r = await runCli(["--version"], { bin: checkout, cwd: join(tmp, "checkout") });
    expect(r.stdout, r.stderr).toBe("src\n");
  });
});
