import { TaskLoadError } from "../errors.ts";
import type { TaskDefinition } from "./definition.ts";

/** Registered tasks by name, with the file (and export) each came from (for error messages). */
export class TaskRegistry {
  private readonly tasks = new Map<string, { def: TaskDefinition; source: string; exportName: string | undefined }>();

  register(name: string, def: TaskDefinition, source: string, exportName?: string): void {
    const existing = this.tasks.get(name);
    if (existing && existing.def !== def) {
      // Two definitions in one file differ only by their exports: "in a.ts and in a.ts" would not say which.
      const same = existing.source === source && existing.exportName !== undefined && exportName !== undefined;
      const where = (src: string, exp: string | undefined) => (same ? `${src} (export ${exp})` : src);
      throw new TaskLoadError(`task "${name}" is defined twice: in ${where(existing.source, existing.exportName)} and in ${where(source, exportName)}; rename one`);
    }
    this.tasks.set(name, { def, source, exportName });
  }

  get(name: string): TaskDefinition | undefined {
    return this.tasks.get(name)?.def;
  }

  names(): string[] {
    return [...this.tasks.keys()].sort();
  }

  get size(): number {
    return this.tasks.size;
  }
}
