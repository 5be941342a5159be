import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
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
    const release = holdBackEsmWarning();
    try {
      mod = await whileLoading(shown, () => import(pathToFileURL(file).href) as Promise<Record<string, unknown>>);
    } catch (err) {
      throw new TaskLoadError(`cannot load task module ${shown}: ${loadFailure(err, file)}`, { cause: err });
    } finally {
      release();
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
 * Node's refusal to require() an ES module means the project is not marked as ES modules. A syntax error in
 * a JavaScript module (`file`) gets its place from Node's own parser (see placeJsSyntaxError).
 */
export function loadFailure(err: unknown, file?: string): string {
  if (!(err instanceof Error)) return String(err);
  const lines = err.message.split("\n");
  const first = lines[0] ?? "";
  if (/^Transform failed with \d+ errors?:$/.test(first) && lines[1]) {
    const at = /^(.*?):(\d+):(\d+): ERROR: (.*)$/.exec(lines[1]);
    return at ? `${at[4]} (line ${at[2]}, column ${at[3]})` : lines[1];
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ERR_REQUIRE_CYCLE_MODULE" || code === "ERR_REQUIRE_ESM" || first.startsWith("Cannot require() ES Module")) {
    return notEsProject(first.split(". ")[0]!);
  }
  if (file !== undefined && /\.js$/.test(file) && err.name === "SyntaxError" && ES_SYNTAX_IN_COMMONJS.test(first)) {
    // Node parsed the .js file as CommonJS (its package.json says "type": "commonjs", as `npm init -y` writes).
    // The same words from another file (a broken dependency) are that file's problem, not this project's.
    const at = caretPlace(err.stack ?? "");
    if (!at || resolve(at.file) === resolve(file)) return notEsProject(first);
  }
  if (file !== undefined && JS_FILE.test(file)) return placeJsSyntaxError(err, first, file) ?? first;
  return first;
}

/** Node's words for ES module syntax met in a file it parses as CommonJS. */
const ES_SYNTAX_IN_COMMONJS = /^(Cannot use import statement outside a module|Unexpected token 'export')$/;

function notEsProject(said: string): string {
  return `task modules are ES modules, and this project is not marked as one: add "type": "module" to its package.json (Node: ${said})`;
}

/**
 * Node warns in two lines of its own ("To load an ES module, set "type": "module" in the package.json or use
 * the .mjs extension.", then how to trace it) before an ES module in a CommonJS project fails to load; the
 * load error says the same in its one line, with the file. Node emits it from C++, past process.emitWarning,
 * to the 'warning' listeners, one of which prints it: while one task module loads, they are called through a
 * filter that holds back that warning and passes every other. Returns the function that puts them back.
 */
function holdBackEsmWarning(): () => void {
  const printers = process.listeners("warning");
  const filter = (warning: Error): void => {
    if (warning.message.startsWith('To load an ES module, set "type": "module"')) return;
    for (const print of printers) print.call(process, warning);
  };
  process.removeAllListeners("warning");
  process.on("warning", filter);
  return () => {
    process.off("warning", filter);
    for (const print of printers) process.on("warning", print);
  };
}

const JS_FILE = /\.m?js$/;

/**
 * Node's SyntaxError for a JavaScript module has no place in its message. Some Node versions put it at the
 * top of the stack ("file:///…/a.js:2", the source line, a caret under the column); Node 20 shows it only
 * when it prints an uncaught error. And tsx, once registered, scans a module's imports first: its scanner
 * (es-module-lexer) fails with "Parse error <file>:L:C" at a place that is often wrong (1:1 for an unclosed
 * parenthesis) and with no reason. So the place comes from the stack when it is there, else from
 * `node --check` on the file: Node's parser, without running the module, on a path taken only on the way out.
 */
function placeJsSyntaxError(err: Error, first: string, file: string): string | undefined {
  const lexer = /^Parse error (.+):\d+:\d+$/.exec(first);
  if (err.name !== "SyntaxError" && !lexer) return undefined;
  const other = (path: string) => (resolve(path) === resolve(file) ? "" : `${relative(process.cwd(), path) || path}, `);
  if (!lexer) {
    const at = caretPlace(err.stack ?? "");
    if (at) return `${first} (${other(at.file)}line ${at.line}, column ${at.column})`;
  }
  const path = lexer?.[1] ?? file;
  const checked = checkSyntax(path);
  // For Node's own error, a check that disagrees (say, an error in a module it imports) would point elsewhere.
  if (!checked || (!lexer && checked.message !== first)) return undefined;
  return `${checked.message} (${other(path)}line ${checked.line}, column ${checked.column})`;
}

/** The place in Node's report of a syntax error: "<file or URL>:<line>", the source line, then a caret. */
function caretPlace(text: string): { file: string; line: number; column: number } | undefined {
  const at = /^(.+):(\d+)\r?\n.*\r?\n([ \t]*)\^/.exec(text);
  if (!at) return undefined;
  const where = at[1]!;
  // The caret line copies the source line's tabs, so its length is the column, counted from 0 as esbuild's.
  return { file: where.startsWith("file://") ? fileURLToPath(where) : where, line: Number(at[2]), column: at[3]!.length };
}

function checkSyntax(path: string): { message: string; line: number; column: number } | undefined {
  const run = spawnSync(process.execPath, ["--check", path], { encoding: "utf8", timeout: 10_000 });
  if (run.status === 0 || typeof run.stderr !== "string") return undefined;
  const at = caretPlace(run.stderr);
  const message = /^SyntaxError: (.*)$/m.exec(run.stderr)?.[1];
  return at && message !== undefined ? { message, line: at.line, column: at.column } : undefined;
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
