/**
 * The one task of the embedded-broker e2e tests. Each run appends its label to a file of its own worker
 * process (QWORKER_E2E_OUT/done.<pid>.log) before returning, so the test counts lost and duplicated runs
 * from outside the broker it is checking. appendFileSync: the line is on disk before the task is settled.
 */
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { defineTask } from "../../../src/index.ts";

const out = process.env.QWORKER_E2E_OUT ?? ".";
const file = join(out, `done.${process.pid}.log`);

export const record = defineTask({ name: "e2e.record" }, (label: string) => {
  appendFileSync(file, `${label}\n`);
  return label;
});
