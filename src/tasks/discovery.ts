import { readdirSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { TaskLoadError } from "../errors.ts";
import { isTaskDefinition } from "./definition.ts";
import { whileLoading } from "./loading.ts";
import { TaskRegistry } from "./registry.ts";

const TASK_FILE = /\.(ts|mts|js|mjs)$/;
const SKIP = /(\.d\.ts|\.test\.[cm]?[jt]s|\.spec\.[cm]?[jt]s)$/;

export interface DiscoveryResult {
  registry: TaskRegistry;
  files: string[];
  /** Files that loaded but defined no task (reported, not fatal). */
  empty: string[];
}

/**
 * Load every task module under `dir`, recursively, in sorted order so start-up is deterministic.
 *
 * Naming rule for tasks defined without a name: the file's path under `dir` without its extension, with
 * folders joined by dots, then the export name: tasks/shop/invoices.ts `export const send = defineTask(…)`
 * is "shop.invoices.send"; a default export is just "shop.invoices".
 *
 * All or nothing: a module whose import throws, or two tasks with one name, stop the load with an error
 * naming the file(s), so a worker never starts half-loaded.
 */
export async function discoverTasks(dir: string, registry = new TaskRegistry()): Promise<DiscoveryResult> {
  const root = resolve(dir);
  let rootStat;
  try {
    rootStat = statSync(root);
  } catch {
    throw new TaskLoadError(`tasks directory ${dir} not found: create it or set tasks_dir / --tasks`);
  }
  if (!rootStat.isDirectory()) throw new TaskLoadError(`tasks_dir ${dir} is not a directory`);

  const files = listFiles(root);
  if (files.some((f) => /\.m?ts$/.test(f))) await enableTypeScript();
  const empty: string[] = [];
  for (const file of files) {
    const shown = relative(process.cwd(), file) || file;
    let mod: Record<string, unknown>;
    try {
      mod = await whileLoading(shown, () => import(pathToFileURL(file).href) as Promise<Record<string, unknown>>);
    } catch (err) {
      throw new TaskLoadError(`cannot load task module ${shown}: ${loadFailure(err)}`, { cause: err });
    }
    const base = relative(root, file).replace(TASK_FILE, "").split(sep).join(".");
    let found = 0;
    for (const [exportName, value] of Object.entries(mod)) {
      if (!isTaskDefinition(value)) continue;
      value.name ??= exportName === "default" ? base : `${base}.${exportName}`;
      registry.register(value.name, value, shown, exportName);
      found++;
    }
    if (found === 0) empty.push(shown);
  }
  return { registry, files, empty };
}

/**
 * One line that says what is wrong with a module that failed to load. esbuild (through tsx) reports a syntax
 * error as "Transform failed with 1 error:" and puts the error itself, with its place, on the next line;
 * Node's refusal to require() an ES module means the project is not marked as ES modules.
 */
export function loadFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const lines = err.message.split("\n");
  const first = lines[0] ?? "";
  if (/^Transform failed with \d+ errors?:$/.test(first) && lines[1]) {
    const at = /^(.*?):(\d+):(\d+): ERROR: (.*)$/.exec(lines[1]);
    return at ? `${at[4]} (line ${at[2]}, column ${at[3]})` : lines[1];
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ERR_REQUIRE_CYCLE_MODULE" || code === "ERR_REQUIRE_ESM" || first.startsWith("Cannot require() ES Module")) {
    const said = first.split(". ")[0];
    return `task modules are ES modules, and this project is not marked as one: add "type": "module" to its package.json (Node: ${said})`;
  }
  return first;
}

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (entry.name.startsWith(".") || entry.name.startsWith("_") || entry.name === "node_modules") continue;
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(full));
    else if (TASK_FILE.test(entry.name) && !SKIP.test(entry.name)) out.push(full);
  }
  return out;
}


/** Let import() load TypeScript task modules: a no-op when qworker itself already runs under tsx. */
async function enableTypeScript(): Promise<void> {
  const flag = Symbol.for("qworker.tsxRegistered");
  const g = globalThis as { [flag]?: boolean };
  if (g[flag]) return;
  g[flag] = true;
  const { register } = await import("tsx/esm/api");
  register();
}
