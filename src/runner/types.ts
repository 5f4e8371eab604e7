// The contract between the runner and step modules, and the runner's public options and events.
import type { Problem } from './errors.js';

/**
 * One step kind: a module under src/steps/ exports one of these as its default export.
 * P defaults to `any` so that one registry can hold steps whose params differ.
 */
export interface StepDefinition<P = any> {
  /** The key that names the step in a pipeline, e.g. 'exec', 'dump'. */
  kind: string;
  /** One line for `--help` and the schema's description. */
  summary: string;
  /** JSON Schema (draft-07) of the params object, with additionalProperties: false. */
  schema: object;
  /** Names of the outputs it produces; `${steps.ID.NAME}` is checked against them. */
  outputs?: string[];
  /**
   * Params holding an expression (see src/runner/expression.ts). The runner leaves their
   * `${...}` in place and the step evaluates them with ctx.evaluate, so that a substituted
   * value can never change the expression's shape.
   */
  expressions?: string[];
  /** Short title for the task list, e.g. "make" for `exec: { run: make }`. */
  title?(params: P): string;
  run(ctx: StepContext, params: P): Promise<Record<string, unknown> | void>;
}

export type ProgressUnit = 'bytes' | 'items';

export interface StepContext {
  /** Aborted on SIGINT/SIGTERM or when the step's timeout expires; reason says which. */
  signal: AbortSignal;
  /** A line of output for the step. */
  log(message: string): void;
  /** Throttled progress (at most 10 updates per second reach the output, the last always does). */
  progress(done: number, total: number, unit?: ProgressUnit): void;
  /** Undo action, run in reverse order of registration if the pipeline fails or is interrupted. */
  addRollback(description: string, fn: () => Promise<void> | void): void;
  /** Evaluates one of the step's `expressions` params against the current variables. */
  evaluate(expression: string): Evaluation;
  /** The pipeline file, if the pipeline came from one. */
  pipelineFile?: string;
  /** Relative paths in params resolve against this: the pipeline file's directory, else the process cwd. */
  cwd: string;
}

export interface Evaluation {
  value: boolean;
  /** The expression with its operands substituted, e.g. `"3" == "4"`, for messages. */
  shown: string;
}

export type OutputMode = 'auto' | 'tty' | 'plain' | 'json' | 'silent';

export interface RunOptions {
  /** Shown in messages and used for relative paths; set by runPipelineFile. */
  file?: string;
  /** `--set key=value` values; they override `vars:`. */
  set?: Record<string, string>;
  /** Environment for `${env.NAME}` and for commands; defaults to process.env. */
  env?: Record<string, string | undefined>;
  /** Directory for relative paths; defaults to the pipeline file's directory, else process.cwd(). */
  cwd?: string;
  /** 'auto': live task list on a TTY outside CI, plain lines otherwise. */
  output?: OutputMode;
  stdout?: NodeJS.WritableStream;
  /** Where the task list goes when it is not stdout's (commands that print results). */
  stderr?: NodeJS.WritableStream;
  /** Render the task list on stderr so that stdout carries only a command's result. */
  progressToStderr?: boolean;
  /** Validate and print the plan; run nothing. */
  dryRun?: boolean;
  /** Aborting it interrupts the pipeline (the CLI ties it to SIGINT/SIGTERM); reason is kept. */
  signal?: AbortSignal;
  /** Step kinds known to this run; defaults to the built-in registry. */
  steps?: readonly StepDefinition[];
  /** Every event, as also written by `--json`. */
  onEvent?: (event: RunEvent) => void;
}

export type StepStatus = 'ok' | 'failed' | 'skipped';
export type PipelineStatus = 'ok' | 'failed' | 'interrupted';

export interface StepRecord {
  index: number;
  id?: string;
  kind: string;
  title: string;
  status: StepStatus;
  duration_ms: number;
  outputs: Record<string, unknown>;
  error: string | null;
}

export interface RunResult {
  status: PipelineStatus;
  exitCode: number;
  steps: StepRecord[];
  /** Outputs by step id. */
  outputs: Record<string, Record<string, unknown>>;
  /** The error that stopped the pipeline. */
  error?: Error;
  rollbackErrors: Error[];
  duration_ms: number;
}

export type RunEvent =
  | { event: 'plan'; name: string; file: string | null; steps: PlannedStep[] }
  | { event: 'pipeline-start'; name: string; file: string | null; steps: number }
  | { event: 'step-start'; index: number; id: string | null; kind: string; title: string }
  | { event: 'log'; index: number; id: string | null; message: string }
  | { event: 'progress'; index: number; id: string | null; done: number; total: number; unit: ProgressUnit | null }
  | {
      event: 'step-end';
      index: number;
      id: string | null;
      kind: string;
      status: StepStatus;
      duration_ms: number;
      outputs: Record<string, unknown>;
      error: string | null;
    }
  | { event: 'rollback-start'; index: number; description: string }
  | { event: 'rollback-end'; index: number; description: string; duration_ms: number; error: string | null }
  | { event: 'pipeline-end'; status: PipelineStatus; exit_code: number; duration_ms: number; error: string | null }
  /** Written by the CLI instead of pipeline-start when validation fails (exit code 2). */
  | { event: 'invalid'; problems: Problem[] };

export interface PlannedStep {
  index: number;
  id: string | null;
  kind: string;
  title: string;
  params: Record<string, unknown>;
  timeout_ms: number | null;
  if: string | null;
  continue_on_error: boolean;
}
