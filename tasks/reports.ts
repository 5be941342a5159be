import { defineTask, taskContext } from "qworker";

/** A slow task: builds a report in steps and stops early if it is aborted (time limit, revoke). */
export const generate = defineTask(
  { name: "reports.generate", softTimeLimit: 60, timeLimit: 90 },
  async (reportName: string, rows: number = 5) => {
    const { signal } = taskContext();
    let total = 0;
    for (let i = 0; i < rows; i++) {
      signal.throwIfAborted();
      await new Promise((r) => setTimeout(r, 200));
      total += i;
    }
    return { report: reportName, rows, checksum: total };
  },
);
