// Errors that reach the user. Each says what failed and why in one line; the CLI shows
// stacks only with --debug. exitCode is what the process exits with when the error ends it.
import { constants } from 'node:os';

export class CkptError extends Error {
  readonly exitCode: number = 1;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad command line: exit code 2. */
export class UsageError extends CkptError {
  override readonly exitCode = 2;

  /** The command whose `--help` explains the right usage. */
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

/** A problem at a place in a pipeline file; line and col are 1-based. */
export interface Problem {
  file?: string;
  line?: number;
  col?: number;
  /** Where in the document, e.g. "steps[0].exec", when there is no line (documents built in code). */
  path?: string;
  message: string;
}

export function formatProblem(problem: Problem): string {
  const where = [problem.file, problem.line, problem.col].filter((part) => part !== undefined);
  if (problem.line === undefined && problem.path) where.push(problem.path);
  return where.length > 0 ? `${where.join(':')}: ${problem.message}` : problem.message;
}

/** The pipeline cannot run: every problem found, each `FILE:LINE:COL: message`. Exit code 2. */
export class PipelineError extends CkptError {
  override readonly exitCode = 2;

  constructor(readonly problems: Problem[]) {
    super(problems.map(formatProblem).join('\n'));
  }
}

/** A step failed. Outputs it produced before failing remain readable by later steps. */
export class StepError extends CkptError {
  override readonly exitCode = 1;
  readonly outputs?: Record<string, unknown>;

  constructor(message: string, options?: { cause?: unknown; outputs?: Record<string, unknown> }) {
    super(message, options);
    this.outputs = options?.outputs;
  }
}

/** Abort reason when a step's `timeout:` expires. */
export class StepTimeoutError extends StepError {
  constructor(readonly ms: number, label: string) {
    super(`timed out after ${label}`);
  }
}

/** Abort reason for SIGINT/SIGTERM; the exit code follows the shell convention 128 + signal. */
export class InterruptedError extends CkptError {
  override readonly exitCode: number;

  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted by ${signal}`);
    this.exitCode = 128 + (constants.signals[signal] ?? 0);
  }
}

/** The message of anything thrown; with `debug`, the stack and causes too. */
export function describeError(err: unknown, debug = false): string {
  if (!(err instanceof Error)) return String(err);
  if (!debug) return err.message;
  let text = err.stack ?? err.message;
  let cause = err.cause;
  while (cause !== undefined) {
    text += `\ncaused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return text;
}
