import type { Logger } from "pino";
import type { QWorkerConfig } from "../../config/schema.ts";
import { AsyncPool, type Pool } from "../pool.ts";
import { ProcessPool } from "./process-pool.ts";

/** The pool `config.pool` names, started (a process pool's children have loaded the tasks when this resolves). */
export async function createPool(config: QWorkerConfig, logger: Logger): Promise<Pool> {
  if (config.pool === "async") return new AsyncPool();
  const pool = new ProcessPool({
    size: config.concurrency,
    tasksDir: config.tasks_dir,
    logger,
    loglevel: config.loglevel === "warning" ? "warn" : config.loglevel,
    maxTasksPerChild: config.max_tasks_per_child,
    maxMemoryPerChildKb: config.max_memory_per_child,
  });
  try {
    await pool.start();
  } catch (err) {
    await pool.close();
    throw err;
  }
  return pool;
}

export { ProcessPool } from "./process-pool.ts";
