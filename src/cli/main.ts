import { Command } from "commander";
import { QWorkerError, TaskLoadError } from "../errors.ts";
import { moduleLoading } from "../tasks/loading.ts";
import { VERSION } from "../version.ts";
import { deadCommand } from "./dead.ts";
import { demoCommand } from "./demo.ts";
import { exitWithError, setShowStack } from "./errors.ts";
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

// Read here, not from each command's config, so that it covers every command and errors raised before or
// while the config loads; the worker's --loglevel and config file can still turn it on.
setShowStack(process.env.QWORKER_LOGLEVEL?.toLowerCase() === "debug");

// Usage errors (unknown option, missing argument) exit 2 like every other bad input; help and version exit 0.
for (const cmd of [program, ...program.commands]) {
  cmd.exitOverride((err) => {
    process.exit(err.exitCode === 0 ? 0 : 2);
  });
}

// Commander's own errors ("error: unknown option '--bogus'") start with "qworker: " like every other error,
// so a log reader or a wrapper script sees one format. Set on every command: addCommand does not pass it on.
const withPrefix = (cmd: Command): void => {
  cmd.configureOutput({ outputError: (text, write) => write(`qworker: ${text}`) });
  cmd.commands.forEach(withPrefix);
};
withPrefix(program);

// A reader that stops early (`qworker dead --json | head -1`) has what it wanted: end quietly and
// successfully, as `git log | head` does, instead of an unhandled EPIPE with its stack trace.
// A closed stderr is different: nothing can be reported any more, and a worker must not end with 0 (a
// supervisor would take that for a clean stop and not restart it), so that exits 1, silently.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  exitWithError(err);
});
process.stderr.on("error", () => process.exit(1));

// A command whose promise is left pending with nothing else to wait on (a library that never settles one,
// as ioredis's Cluster connect once did) would end the process with status 0 and no output: a send that
// printed no id, a worker that simply stopped, both reported as success. Say so and fail instead.
// A task module whose top-level await never settles ends up here too: that is the module's doing, and the
// error names it.
let finished = false;
process.on("beforeExit", () => {
  const stuck = moduleLoading();
  if (!finished && stuck !== undefined) {
    exitWithError(
      new TaskLoadError(
        `cannot load task module ${stuck}: its top-level await never finished (nothing was left to wait for): settle the promise it awaits, or await it inside a task instead`,
      ),
    );
  }
  if (!finished) {
    exitWithError(
      new QWorkerError("E_INTERNAL", "the command stopped before it finished, with nothing left to wait for (a bug in qworker): run it again with QWORKER_LOGLEVEL=debug, and report the output"),
    );
  }
});
// Commander answers `qworker help bogus` with the whole help on stderr, as if the help had been asked for.
// A name that is no command is the same mistake as `qworker bogus`, so it gets that error, did-you-mean
// included. `help help` (which commander also took for a failed lookup) is the general help, as `help` is.
const [first, second, ...rest] = process.argv.slice(2);
const isCommand = (name: string): boolean => program.commands.some((c) => c.name() === name || c.aliases().includes(name));
const lookup = first === "help" && second !== undefined && !second.startsWith("-") && !isCommand(second);
const argv = !lookup ? process.argv : [...process.argv.slice(0, 2), ...(second === "help" ? ["help"] : [second, ...rest])];
program.parseAsync(argv).then(() => {
  finished = true;
}, exitWithError);
