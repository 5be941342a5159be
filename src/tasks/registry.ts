import { TaskLoadError } from "../errors.ts";
import type { TaskDefinition } from "./definition.ts";

/** Registered tasks by name, with the file each came from (for error messages). */
export class TaskRegistry {
  private readonly tasks = new Map<string, { def: TaskDefinition; source: string }>();

  register(name: string, def: TaskDefinition, source: string): void {
    const existing = this.tasks.get(name);
    if (existing && existing.def !== def) {
      throw new TaskLoadError(`task "${name}" is defined twice: in ${existing.source} and in ${source}; rename one`);
    }
    this.tasks.set(name, { def, source });
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
