#!/usr/bin/env node
// Entry point. Runs the compiled build (dist/) when it is at least as new as src/, which keeps the CLI quick
// to start; otherwise (a working tree with edits) it registers tsx and runs the TypeScript sources directly.
// User task modules written in TypeScript load through tsx either way (see src/tasks/discovery.ts).
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const stamp = join(root, "dist", ".build-stamp");

function newest(dir) {
  let max = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    max = Math.max(max, entry.isDirectory() ? newest(full) : statSync(full).mtimeMs);
  }
  return max;
}

const srcDir = join(root, "src");
const useDist =
  process.env.QWORKER_FROM_SOURCE !== "1" &&
  existsSync(stamp) &&
  (!existsSync(srcDir) || newest(srcDir) <= statSync(stamp).mtimeMs);

if (useDist) {
  await import("../dist/cli/main.js");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  globalThis[Symbol.for("qworker.tsxRegistered")] = true;
  await import("../src/cli/main.ts");
}
