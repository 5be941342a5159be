#!/usr/bin/env node
// Entry point. Runs the compiled build (dist/) when it is at least as new as src/, or always in an installed
// copy, which keeps the CLI quick to start; otherwise (a working tree with edits) it registers tsx and runs
// the TypeScript sources directly.
// User task modules written in TypeScript load through tsx either way (see src/tasks/discovery.ts).
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, sep } from "node:path";
import { fileURLToPath } from "node:url";

// A supervisor may stop a worker it has only just started, while Node still loads the CLI (a few hundred ms
// from source). With no listener yet that SIGTERM would kill it with status 143, which reads as a crash; this
// listener only notes the signal, and the worker acts on it once its own handlers are in (src/cli/early-signal.ts).
// `demo` runs a worker too, and a Ctrl-C while it starts is the same clean stop.
// Other commands keep Node's default: for them a signal is meant to end them at once.
if (process.argv[2] === "worker" || process.argv[2] === "demo") {
  const early = { signal: undefined, listener: (sig) => (early.signal ??= sig) };
  globalThis[Symbol.for("qworker.earlySignal")] = early;
  process.on("SIGTERM", early.listener);
  process.on("SIGINT", early.listener);
}

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
// An installed copy (a path through node_modules: npm, pnpm, a global install) is nobody's working tree, and
// the times on its files are whatever the install gave them: `npm i qworker-0.1.0.tgz` left dist/.build-stamp
// older than src/, so the comparison found every install out of date and ran each command from source through
// tsx (about twice as slow to start, and stack traces into src/*.ts). A checkout linked with `npm link`
// resolves to its real path, outside node_modules, and keeps the comparison.
const installed = root.split(sep).includes("node_modules");
const useDist =
  process.env.QWORKER_FROM_SOURCE !== "1" &&
  existsSync(stamp) &&
  (installed || !existsSync(srcDir) || newest(srcDir) <= statSync(stamp).mtimeMs);

if (useDist) {
  await import("../dist/cli/main.js");
} else {
  const { register } = await import("tsx/esm/api");
  register();
  globalThis[Symbol.for("qworker.tsxRegistered")] = true;
  await import("../src/cli/main.ts");
}
