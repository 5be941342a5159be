/**
 * `--runtime compiled` (the default): the engine processes run plain JavaScript compiled by tsc, not
 * TypeScript through tsx. tsx's loader costs every process alike (~50 MB of RSS and a hook on every
 * import), which flattens the memory comparison and is not what a deployment runs (qworker ships dist/).
 *
 * src/, bench/ and test/support/ are compiled together into node_modules/.cache/qworker-bench (inside the
 * repository, so `bullmq`, `ioredis`… resolve from node_modules as usual; ignored by git), with relative
 * `.ts` imports rewritten to `.js` (rewriteRelativeImportExtensions in tsconfig.json) and the Lua scripts
 * copied next to the compiled Redis transport, as scripts/build.mjs does for dist/. Type errors do not stop
 * the build (tsc still emits); only a failed emit does.
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "./protocol.ts";

export const COMPILED_DIR = path.join(repoRoot, "node_modules", ".cache", "qworker-bench");

/** Compile the sources the engine processes need; returns the directory that mirrors the repository. */
export function compileForBench(): string {
  rmSync(COMPILED_DIR, { recursive: true, force: true });
  mkdirSync(COMPILED_DIR, { recursive: true });
  const tsconfig = path.join(COMPILED_DIR, "tsconfig.json");
  writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: path.join(repoRoot, "tsconfig.json"),
      compilerOptions: {
        rootDir: repoRoot,
        outDir: COMPILED_DIR,
        noEmit: false,
        declaration: false,
        sourceMap: false,
        noEmitOnError: false,
      },
      include: ["src", "bench", "test/support"].map((d) => path.join(repoRoot, d)),
    }),
  );
  try {
    execFileSync(process.execPath, [path.join(repoRoot, "node_modules", "typescript", "bin", "tsc"), "-p", tsconfig], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch {
    // Exit code 2 = emitted with type errors: someone's work in progress must not stop a benchmark.
  }
  const entry = path.join(COMPILED_DIR, "bench", "engines", "qworker.js");
  if (!existsSync(entry)) throw new Error(`tsc did not emit ${path.relative(repoRoot, entry)}; run npx tsc --noEmit -p tsconfig.json to see why`);
  cpSync(path.join(repoRoot, "package.json"), path.join(COMPILED_DIR, "package.json")); // versions in the results
  cpSync(path.join(repoRoot, "src", "broker", "redis", "lua"), path.join(COMPILED_DIR, "src", "broker", "redis", "lua"), { recursive: true });
  return COMPILED_DIR;
}
