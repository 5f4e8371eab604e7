// ckpt's command line: `run`, `schema`, and the plain commands of the table in
// src/runner/commands.ts, each a one-step pipeline run by the same runner.
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import {
  CkptError,
  COMMANDS,
  GLOBAL_FLAGS,
  InterruptedError,
  PipelineError,
  UsageError,
  commandHelp,
  commandParams,
  composePipelineSchema,
  describeError,
  describeFailure,
  flagsHelp,
  formatProblem,
  parseArgs,
  runPipeline,
  runPipelineFile,
  type CommandDefinition,
  type FlagSpec,
  type RunResult,
} from './runner/index.js';
import { didYouMean } from './runner/suggest.js';
import { builtinSteps } from './steps/index.js';

const RUN_FLAGS: FlagSpec[] = [
  { long: 'set', type: 'string', value: 'KEY=VALUE', multiple: true, description: 'set a variable; overrides vars:' },
  { long: 'dry-run', type: 'boolean', description: 'validate and print the plan; run nothing' },
  ...GLOBAL_FLAGS,
];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function mainHelp(): string {
  const commands: Array<[string, string]> = [
    ['run', 'Run a pipeline file'],
    ['schema', 'Print the pipeline JSON Schema (for editors)'],
    ...COMMANDS.map((command): [string, string] => [command.name, command.summary]),
  ];
  const width = Math.max(...commands.map(([name]) => name.length)) + 3;
  return [
    `ckpt ${version()}: checkpoint/restore of Linux processes, driven by pipelines`,
    '',
    'Usage:',
    '  ckpt run FILE [--set KEY=VALUE]... [--json] [--dry-run]',
    '  ckpt COMMAND [options]',
    '  ckpt COMMAND --help',
    '',
    'Commands:',
    ...commands.map(([name, summary]) => `  ${name.padEnd(width)}${summary}`),
    '',
    `Step kinds: ${builtinSteps.map((step) => step.kind).sort().join(', ')} (see 'ckpt schema')`,
    '',
    'Options:',
    ...flagsHelp([...GLOBAL_FLAGS, { long: 'version', short: 'V', type: 'boolean', description: 'print the version' }]),
    '',
    'Exit codes: 0 success, 1 a step failed, 2 invalid pipeline or usage,',
    '130/143 interrupted by SIGINT/SIGTERM.',
    '',
  ].join('\n');
}

function runHelp(): string {
  return [
    'Usage: ckpt run FILE [options]',
    '',
    'Run the pipeline in FILE (YAML). The whole file is validated first; every problem is',
    'reported as FILE:LINE:COL. Then its steps run in order; if one fails (or on SIGINT/SIGTERM)',
    'the rollbacks of the steps that ran are executed in reverse order.',
    '',
    'Options:',
    ...flagsHelp(RUN_FLAGS),
    '',
  ].join('\n');
}

function schemaHelp(): string {
  return [
    'Usage: ckpt schema',
    '',
    'Print the JSON Schema of pipeline files, composed from every step kind. For editors with',
    'yaml-language-server, start a pipeline with:',
    '  # yaml-language-server: $schema=PATH/TO/schemas/pipeline.schema.json',
    '',
  ].join('\n');
}

/** Where the CLI writes; tests pass their own streams. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

/** Runs `work` with SIGINT/SIGTERM turned into an abort; a second signal exits at once. */
async function withSignals<T>(io: CliIo, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) {
      io.stderr.write(`ckpt: ${signal} again, exiting without waiting for rollbacks\n`);
      process.exit(128 + (constants.signals[signal] ?? 0));
    }
    controller.abort(new InterruptedError(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // The work is over: a signal now interrupts nothing, and ends ckpt with the result it has.
    process.on('SIGINT', exitWithResult);
    process.on('SIGTERM', exitWithResult);
  }
}

function exitWithResult(): void {
  process.exit(process.exitCode ?? 0);
}

function finish(io: CliIo, result: RunResult, debug: boolean): number {
  if (result.status !== 'ok') io.stderr.write(`ckpt: ${describeFailure(result, debug)}\n`);
  for (const error of result.rollbackErrors) io.stderr.write(`ckpt: rollback failed: ${describeError(error, debug)}\n`);
  return result.exitCode;
}

async function runCommand(io: CliIo, args: string[], debug: boolean): Promise<number> {
  const parsed = parseArgs(args, RUN_FLAGS, 'run');
  if (parsed.flags.get('help')) {
    io.stdout.write(runHelp());
    return 0;
  }
  if (parsed.positionals.length === 0) throw new UsageError('missing pipeline FILE', 'run');
  if (parsed.positionals.length > 1) throw new UsageError(`unexpected argument '${parsed.positionals[1]}'`, 'run');
  const set: Record<string, string> = {};
  for (const assignment of (parsed.flags.get('set') as string[] | undefined) ?? []) {
    const equals = assignment.indexOf('=');
    if (equals <= 0) throw new UsageError(`--set needs KEY=VALUE (got '${assignment}')`, 'run');
    set[assignment.slice(0, equals)] = assignment.slice(equals + 1);
  }
  const json = parsed.flags.get('json') === true;
  try {
    const result = await withSignals(io, (signal) =>
      runPipelineFile(parsed.positionals[0]!, {
        set,
        output: json ? 'json' : 'auto',
        dryRun: parsed.flags.get('dry-run') === true,
        signal,
        stdout: io.stdout,
        stderr: io.stderr,
      }),
    );
    return finish(io, result, debug);
  } catch (err) {
    if (json && err instanceof PipelineError) io.stdout.write(`${JSON.stringify({ event: 'invalid', problems: err.problems })}\n`);
    throw err;
  }
}

async function runTableCommand(io: CliIo, command: CommandDefinition, args: string[], debug: boolean): Promise<number> {
  const parsed = parseArgs(args, [...command.flags, ...GLOBAL_FLAGS], command.name);
  if (parsed.flags.get('help')) {
    io.stdout.write(commandHelp(command));
    return 0;
  }
  const json = parsed.flags.get('json') === true;
  const doc = { version: 1, name: `ckpt ${command.name}`, steps: [{ [command.step]: commandParams(command, parsed) }] };
  let result: RunResult;
  try {
    result = await withSignals(io, (signal) =>
      runPipeline(doc, {
        // A command that prints its result keeps stdout for it: the task list goes to stderr.
        output: json ? (command.print ? 'silent' : 'json') : 'auto',
        progressToStderr: command.print !== undefined,
        signal,
        stdout: io.stdout,
        stderr: io.stderr,
      }),
    );
  } catch (err) {
    // Built from flags, so its problems are usage errors; they name the step's options.
    if (err instanceof PipelineError) throw new UsageError(err.problems.map((problem) => problem.message).join('\n'), command.name);
    throw err;
  }
  const outputs = result.steps[0]?.outputs ?? {};
  // A failed step may still have outputs worth printing (check's table of features).
  if (command.print && (result.status === 'ok' || Object.keys(outputs).length > 0)) io.stdout.write(command.print(outputs, { json }));
  const code = finish(io, result, debug);
  return result.status === 'ok' && command.exitCode ? command.exitCode(outputs) : code;
}

function report(io: CliIo, err: unknown, debug: boolean): number {
  if (err instanceof PipelineError) {
    for (const problem of err.problems) io.stderr.write(`${formatProblem(problem)}\n`);
    return err.exitCode;
  }
  if (err instanceof UsageError) {
    io.stderr.write(`ckpt${err.command ? ` ${err.command}` : ''}: ${err.message}\n`);
    io.stderr.write(`See 'ckpt ${err.command ? `${err.command} ` : ''}--help'.\n`);
    return err.exitCode;
  }
  io.stderr.write(`ckpt: ${describeError(err, debug)}\n`);
  return err instanceof CkptError ? err.exitCode : 1;
}

/** Runs the command line; returns the exit code. */
export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const debug = argv.includes('--debug');
  const [name, ...args] = argv;
  try {
    if (name === undefined) {
      io.stderr.write(mainHelp());
      return 2;
    }
    if (name === '--help' || name === '-h') {
      io.stdout.write(mainHelp());
      return 0;
    }
    if (name === '--version' || name === '-V') {
      io.stdout.write(`${version()}\n`);
      return 0;
    }
    if (name === 'help') return await main(args.length > 0 ? [args[0]!, '--help'] : ['--help'], io);
    if (name === 'run') return await runCommand(io, args, debug);
    if (name === 'schema') {
      const parsed = parseArgs(args, GLOBAL_FLAGS, 'schema');
      if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument '${parsed.positionals[0]}'`, 'schema');
      io.stdout.write(parsed.flags.get('help') ? schemaHelp() : `${JSON.stringify(composePipelineSchema(builtinSteps), null, 2)}\n`);
      return 0;
    }
    const command = COMMANDS.find((candidate) => candidate.name === name);
    if (command) return await runTableCommand(io, command, args, debug);
    const names = ['run', 'schema', 'help', ...COMMANDS.map((candidate) => candidate.name)];
    throw new UsageError(`unknown command '${name}'${didYouMean(name, names)}`);
  } catch (err) {
    return report(io, err, debug);
  }
}
