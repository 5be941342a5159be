import { Command } from "commander";
import { VERSION } from "../version.ts";
import { deadCommand } from "./dead.ts";
import { demoCommand } from "./demo.ts";
import { exitWithError } from "./errors.ts";
import { healthCommand } from "./health.ts";
import { inspectCommand } from "./inspect.ts";
import { purgeCommand } from "./purge.ts";
import { requeueCommand } from "./requeue.ts";
import { resultCommand } from "./result.ts";
import { revokeCommand } from "./revoke.ts";
import { sendCommand } from "./send.ts";
import { workerCommand } from "./worker.ts";

const program = new Command("qworker")
  .description("qworker: a reliable, fast background task queue for Node.js")
  .version(VERSION)
  .showHelpAfterError("(run with --help for usage)")
  .addCommand(workerCommand())
  .addCommand(sendCommand())
  .addCommand(resultCommand())
  .addCommand(inspectCommand())
  .addCommand(deadCommand())
  .addCommand(requeueCommand())
  .addCommand(purgeCommand())
  .addCommand(healthCommand())
  .addCommand(revokeCommand())
  .addCommand(demoCommand());

// Usage errors (unknown option, missing argument) exit 2 like every other bad input; help and version exit 0.
for (const cmd of [program, ...program.commands]) {
  cmd.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 2);
  });
}

program.parseAsync(process.argv).catch(exitWithError);
