import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { TaskLoadError } from "../../src/errors.ts";
import { discoverTasks, loadFailure } from "../../src/tasks/discovery.ts";
import { TaskRegistry } from "../../src/tasks/registry.ts";

const fixtures = join(import.meta.dirname, "..", "fixtures");
const shown = (...parts: string[]) => relative(process.cwd(), join(fixtures, ...parts));

async function loadError(dir: string, registry?: TaskRegistry): Promise<TaskLoadError> {
  try {
    await discoverTasks(join(fixtures, dir), registry);
  } catch (err) {
    expect(err).toBeInstanceOf(TaskLoadError);
    return err as TaskLoadError;
  }
  throw new Error(`expected discovery of ${dir} to fail`);
}

describe("discoverTasks", () => {
  it("loads .ts, .mts, .js and .mjs recursively and names unnamed tasks from file and export", async () => {
    const { registry, files, empty } = await discoverTasks(join(fixtures, "tasks-ok"));
    expect(registry.names()).toEqual(["billing.charge", "billing.refund.refund", "mail.digest", "mail.welcome"]);
    expect(files.map((f) => relative(join(fixtures, "tasks-ok"), f)).sort()).toEqual(
      ["billing/charge.mts", "billing/refund.js", "legacy/helpers.mjs", "mail.ts"].map((p) => join(...p.split("/"))),
    );
    expect(empty).toEqual([shown("tasks-ok", "legacy", "helpers.mjs")]);
    expect(registry.get("billing.refund.refund")?.options.queue).toBe("billing");
  });

  it("the loaded handlers are the modules' own", async () => {
    const { registry } = await discoverTasks(join(fixtures, "tasks-ok"));
    const charge = registry.get("billing.charge");
    expect(charge?.name).toBe("billing.charge");
    expect(await charge?.handler.call(undefined as never, 21)).toBe(42);
  });

  it("two tasks with one name: an error naming both files", async () => {
    const err = await loadError("tasks-dup");
    expect(err.message).toBe(`task "dup.same" is defined twice: in ${shown("tasks-dup", "a.ts")} and in ${shown("tasks-dup", "nested", "b.ts")}; rename one`);
    expect(err.exitCode).toBe(2);
  });

  it("two tasks with one name in one file: an error naming both exports", async () => {
    const err = await loadError("tasks-dup-one-file");
    const file = shown("tasks-dup-one-file", "a.ts");
    expect(err.message).toBe(`task "dup.same" is defined twice: in ${file} (export a) and in ${file} (export b); rename one`);
  });

  it("a module whose import throws: an error naming the file and the reason", async () => {
    const err = await loadError("tasks-throws");
    expect(err.message).toBe(`cannot load task module ${shown("tasks-throws", "broken.ts")}: SMTP host is not configured`);
    expect(err.code).toBe("E_TASK_LOAD");
  });

  it("a syntax error reported by esbuild (as tsx loads task modules): the error and its place, not the header line", () => {
    const err = Object.assign(new Error('Transform failed with 1 error:\n/p/tasks/a.ts:2:42: ERROR: Expected ")" but found ";"'), { name: "TransformError" });
    expect(loadFailure(err)).toBe('Expected ")" but found ";" (line 2, column 42)');
  });

  describe("a syntax error in a JavaScript task module: Node's error with its line and column", () => {
    const dir = mkdtempSync(join(tmpdir(), "qworker-discovery-"));
    writeFileSync(join(dir, "package.json"), '{"type":"module"}');
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const write = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const syntaxError = (message: string, stack?: string) => {
      const err = new SyntaxError(message);
      if (stack !== undefined) err.stack = stack;
      return err;
    };

    it("the place from the top of the stack, where Node puts it", () => {
      const file = write("stacked.js", "export const a = 1;\nconst = 2;\n");
      const stack = `${pathToFileURL(file).href}:2\nconst = 2;\n      ^\n\nSyntaxError: Unexpected token '='\n    at x (node:internal/y:1:1)`;
      expect(loadFailure(syntaxError("Unexpected token '='", stack), file)).toBe("Unexpected token '=' (line 2, column 6)");
    });

    it("the place from Node's parser when the stack has none (Node 20)", () => {
      const file = write("plain.js", "export const a = 1;\nconst = 2;\n");
      const err = syntaxError("Unexpected token '='", "SyntaxError: Unexpected token '='\n    at compileSourceTextModule (node:internal/modules/esm/utils:346:16)");
      expect(loadFailure(err, file)).toBe("Unexpected token '=' (line 2, column 6)");
    });

    it("tsx's import scanner's 'Parse error <file>:1:1' replaced by what Node's parser says, and where", () => {
      const file = write("lexer.mjs", 'import { EOL } from "node:os";\nexport const a = EOL;\n\n\nconst b = (1;\n');
      expect(loadFailure(new Error(`Parse error ${file}:1:1`), file)).toBe("Unexpected token ';' (line 5, column 12)");
    });

    it("no place when the task module itself parses (the error is in a module it imports)", () => {
      const file = write("fine.mjs", "export const a = 1;\n");
      expect(loadFailure(syntaxError("Unexpected token '='", "SyntaxError: Unexpected token '='\n    at x"), file)).toBe("Unexpected token '='");
    });
  });

  it("a project not marked as ES modules: the fix, not Node's require(esm) riddle", () => {
    const err = Object.assign(new Error("Cannot require() ES Module /p/tasks/a.ts in a cycle. A cycle involving require(esm) is not allowed."), { code: "ERR_REQUIRE_CYCLE_MODULE" });
    expect(loadFailure(err)).toBe(`task modules are ES modules, and this project is not marked as one: add "type": "module" to its package.json (Node: Cannot require() ES Module /p/tasks/a.ts in a cycle)`);
    expect(loadFailure(new Error("SMTP host is not configured\n    at x"))).toBe("SMTP host is not configured");
  });

  it("ES module syntax in a .js module parsed as CommonJS: the fix, unless Node's error is about another file", () => {
    const err = (message: string, stack: string) => Object.assign(new SyntaxError(message), { stack });
    const own = err("Cannot use import statement outside a module", "/p/tasks/a.js:1\nimport x from 'y';\n^^^^^^\n\nSyntaxError: Cannot use import statement outside a module");
    expect(loadFailure(own, "/p/tasks/a.js")).toBe(`task modules are ES modules, and this project is not marked as one: add "type": "module" to its package.json (Node: Cannot use import statement outside a module)`);
    const exported = err("Unexpected token 'export'", "SyntaxError: Unexpected token 'export'\n    at wrapSafe (node:internal/modules/cjs/loader:1:1)");
    expect(loadFailure(exported, "/p/tasks/a.js")).toMatch(/not marked as one: .* \(Node: Unexpected token 'export'\)$/);
    const dependency = err("Cannot use import statement outside a module", "/p/node_modules/dep/index.js:1\nimport x from 'y';\n^^^^^^\n\nSyntaxError: Cannot use import statement outside a module");
    expect(loadFailure(dependency, "/p/tasks/a.js")).toMatch(/^Cannot use import statement outside a module \(.*node_modules\/dep\/index\.js, line 1, column 0\)$/);
  });

  it("a missing tasks directory says how to fix it", async () => {
    const err = await loadError("does-not-exist");
    expect(err.message).toMatch(/^tasks directory .*does-not-exist not found: create it or set tasks_dir \/ --tasks$/);
  });

  it("a tasks_dir that is a file", async () => {
    expect((await loadError("tasks-ok/mail.ts")).message).toMatch(/is not a directory$/);
  });
});
