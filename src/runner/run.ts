// Runs a validated plan: steps in order as listr2 tasks, references substituted right before
// each step, per-step timeouts, and the registered rollbacks in reverse order when the
// pipeline fails or is interrupted.
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Listr, type ListrTask } from 'listr2';
import { builtinSteps } from '../steps/index.js';
import { CkptError, describeError, StepError, StepTimeoutError } from './errors.js';
import { evaluateExpression, parseExpression } from './expression.js';
import { formatProgress, Output } from './output.js';
import { readPipelineFile, sourceFromObject, type PipelineSource } from './source.js';
import { interpolate, interpolateTree, stringify, type Reference } from './template.js';
import type { PlannedStep, RunOptions, RunResult, StepContext, StepRecord } from './types.js';
import { isRecord, stepTitle, validatePipeline, type Plan, type PlanStep } from './validate.js';

/** How long a step may take to wind down after its signal aborts before the runner moves on. */
const STOP_GRACE_MS = 5000;

interface Rollback {
  index: number;
  description: string;
  fn: () => Promise<void> | void;
}

/** Loads, validates and runs a pipeline file. Throws PipelineError (exit code 2) if it is invalid. */
export async function runPipelineFile(file: string, options: RunOptions = {}): Promise<RunResult> {
  return runSource(await readPipelineFile(file), { ...options, file });
}

/** Validates and runs a pipeline given as data (e.g. built by a command). Throws PipelineError if invalid. */
export async function runPipeline(doc: unknown, options: RunOptions = {}): Promise<RunResult> {
  return runSource(sourceFromObject(doc, options.file), options);
}

async function runSource(source: PipelineSource, options: RunOptions): Promise<RunResult> {
  const env = options.env ?? process.env;
  const plan = validatePipeline(source, { steps: options.steps ?? builtinSteps, set: options.set, env, cwd: options.cwd });
  const output = new Output(options, env);
  if (options.dryRun) {
    output.plan(plan.name, plan.file, plan.steps.map(describePlanned));
    return { status: 'ok', exitCode: 0, steps: [], outputs: {}, rollbackErrors: [], duration_ms: 0 };
  }
  return new Execution(plan, output, options.signal).run();
}

function describePlanned(step: PlanStep): PlannedStep {
  return {
    index: step.index,
    id: step.id ?? null,
    kind: step.kind,
    title: step.title,
    params: step.preview,
    timeout_ms: step.timeoutMs ?? null,
    if: step.condition?.source ?? null,
    continue_on_error: step.continueOnError,
  };
}

/** The one-line summary of why a run did not succeed. */
export function describeFailure(result: RunResult, debug = false): string {
  // The pipeline stops at the step that failed or was running when interrupted.
  const last = result.steps.at(-1);
  const stopped = last?.status === 'failed' && last.error === result.error?.message;
  const step = stopped ? `step ${last.index + 1} '${last.title}'` : undefined;
  const reason = describeError(result.error, debug);
  if (result.status === 'interrupted') return step ? `${reason} during ${step}` : `pipeline ${reason}`;
  return step ? `${step} failed: ${reason}` : reason;
}

class Execution {
  private readonly records: StepRecord[] = [];
  private readonly outputs: Record<string, Record<string, unknown>> = {};
  private readonly recordById = new Map<string, StepRecord>();
  private readonly rollbacks: Rollback[] = [];
  /** The error that stops the pipeline. */
  private stopError: Error | undefined;

  constructor(
    private readonly plan: Plan,
    private readonly output: Output,
    private readonly signal: AbortSignal | undefined,
  ) {}

  async run(): Promise<RunResult> {
    const started = performance.now();
    this.output.emit({ event: 'pipeline-start', name: this.plan.name, file: this.plan.file ?? null, steps: this.plan.steps.length });

    const tasks: ListrTask[] = this.plan.steps.map((step) => ({
      title: step.title,
      // An interrupt stops the pipeline even after a step that may fail.
      exitOnError: () => !step.continueOnError || this.signal?.aborted === true,
      task: (_ctx, task) => this.runStep(step, task),
    }));
    try {
      await new Listr(tasks, { ...this.output.listrOptions(), registerSignalListeners: false, exitOnError: true }).run();
    } catch (err) {
      this.stopError ??= err instanceof Error ? err : new Error(String(err));
    }

    // A signal that comes after the last step finished interrupts nothing.
    const unfinished = this.stopError !== undefined || this.records.length < this.plan.steps.length;
    const interrupted = this.signal?.aborted === true && unfinished;
    if (interrupted) this.stopError = asError(this.signal!.reason);
    const status = interrupted ? 'interrupted' : this.stopError ? 'failed' : 'ok';
    const rollbackErrors = status === 'ok' ? [] : await this.rollBack();
    const exitCode = status === 'ok' ? 0 : status === 'failed' ? 1 : this.stopError instanceof CkptError ? this.stopError.exitCode : 130;
    const duration_ms = Math.round(performance.now() - started);
    this.output.emit({
      event: 'pipeline-end',
      status,
      exit_code: exitCode,
      duration_ms,
      error: this.stopError ? this.stopError.message : null,
    });
    return {
      status,
      exitCode,
      steps: this.records,
      outputs: this.outputs,
      error: this.stopError,
      rollbackErrors,
      duration_ms,
    };
  }

  private async runStep(
    step: PlanStep,
    task: { title: string; output: string; skip(message?: string): void },
  ): Promise<void> {
    if (this.signal?.aborted) throw asError(this.signal.reason);
    const started = performance.now();
    const base = { index: step.index, id: step.id ?? null };
    let title = step.title;
    let announced = false;
    const announce = (): void => {
      announced = true;
      this.output.emit({ event: 'step-start', ...base, kind: step.kind, title });
    };

    const finish = (status: StepRecord['status'], outputs: Record<string, unknown>, error: Error | null): void => {
      if (!announced) announce();
      const record: StepRecord = {
        index: step.index,
        id: step.id,
        kind: step.kind,
        title,
        status,
        duration_ms: Math.round(performance.now() - started),
        outputs,
        error: error?.message ?? null,
      };
      this.records.push(record);
      if (step.id) {
        this.recordById.set(step.id, record);
        this.outputs[step.id] = outputs;
      }
      this.output.emit({ event: 'step-end', ...base, kind: step.kind, status, duration_ms: record.duration_ms, outputs, error: record.error });
    };

    const controller = new AbortController();
    const forward = (): void => controller.abort(this.signal?.reason);
    this.signal?.addEventListener('abort', forward, { once: true });
    const timer =
      step.timeoutMs === undefined
        ? undefined
        : setTimeout(() => controller.abort(new StepTimeoutError(step.timeoutMs!, step.timeoutText!)), step.timeoutMs);
    try {
      if (step.condition) {
        const evaluation = evaluateExpression(step.condition, (text) => this.substitute(text));
        if (!evaluation.value) {
          finish('skipped', {}, null);
          task.skip(`if: ${evaluation.shown} is false`);
          return;
        }
      }
      const params = this.resolveParams(step);
      // Now with the outputs of earlier steps in it.
      title = stepTitle(step, params);
      task.title = title;
      announce();
      let lastProgress = -Infinity;
      let firstProgress: number | undefined;
      const ctx: StepContext = {
        signal: controller.signal,
        log: (message) => {
          for (const line of message.split('\n')) {
            this.output.emit({ event: 'log', ...base, message: line });
            task.output = line;
          }
        },
        progress: (done, total, unit) => {
          const now = performance.now();
          firstProgress ??= now;
          if (done < total && now - lastProgress < this.output.progressInterval) return;
          lastProgress = now;
          this.output.emit({ event: 'progress', ...base, done, total, unit: unit ?? null });
          task.output = formatProgress(done, total, unit, now - firstProgress);
        },
        addRollback: (description, fn) => this.rollbacks.push({ index: step.index, description, fn }),
        evaluate: (expression) => evaluateExpression(parseExpression(expression), (text) => this.substitute(text)),
        pipelineFile: this.plan.file ? resolve(this.plan.file) : undefined,
        cwd: this.plan.cwd,
      };
      const outputs = await untilAborted(step.definition.run(ctx, params), controller.signal);
      finish('ok', outputs ?? {}, null);
    } catch (err) {
      const error = asError(err);
      finish('failed', err instanceof StepError ? (err.outputs ?? {}) : {}, error);
      if (!step.continueOnError || this.signal?.aborted) this.stopError ??= error;
      throw error;
    } finally {
      clearTimeout(timer);
      this.signal?.removeEventListener('abort', forward);
    }
  }

  private lookup = (ref: Reference, text: string): unknown => {
    if (ref.type === 'var') return this.plan.vars[ref.name];
    if (ref.type === 'env') return this.plan.env[ref.name];
    const record = this.recordById.get(ref.id);
    if (record?.status === 'skipped') throw new StepError(`'${text}' is not available: step '${ref.id}' was skipped`);
    let value: unknown = this.outputs[ref.id];
    for (const key of ref.path) value = isRecord(value) ? value[key] : undefined;
    if (value === undefined) {
      const why = record?.status === 'failed' ? `step '${ref.id}' failed before producing it` : `step '${ref.id}' did not produce it`;
      throw new StepError(`'${text}' is not available: ${why}`);
    }
    return value;
  };

  private substitute(text: string): string {
    return stringify(interpolate(text, this.lookup));
  }

  /** Params with references substituted, checked again now that their values are known. */
  private resolveParams(step: PlanStep): Record<string, unknown> {
    const params = interpolateTree(step.params, this.lookup, step.definition.expressions) as Record<string, unknown>;
    const check = this.plan.registry.params.get(step.kind)!;
    if (check(params)) return params;
    const details = (check.errors ?? []).map((e) => `'${e.instancePath.slice(1).replaceAll('/', '.') || step.kind}' ${e.message}`);
    throw new StepError(`${step.kind}: after substituting references: ${details.join('; ')}`);
  }

  /** Runs the rollbacks in reverse order of registration; returns their failures. */
  private async rollBack(): Promise<Error[]> {
    if (this.rollbacks.length === 0) return [];
    const errors: Error[] = [];
    const tasks: ListrTask[] = [...this.rollbacks].reverse().map((rollback) => ({
      title: `rollback: ${rollback.description}`,
      exitOnError: false,
      task: async () => {
        const started = performance.now();
        this.output.emit({ event: 'rollback-start', index: rollback.index, description: rollback.description });
        let error: Error | null = null;
        try {
          await rollback.fn();
        } catch (err) {
          error = asError(err);
          errors.push(error);
        }
        const duration_ms = Math.round(performance.now() - started);
        this.output.emit({ event: 'rollback-end', index: rollback.index, description: rollback.description, duration_ms, error: error?.message ?? null });
        if (error) throw error;
      },
    }));
    try {
      await new Listr(tasks, { ...this.output.listrOptions(), registerSignalListeners: false, exitOnError: false }).run();
    } catch {
      // Each failure is already in `errors`; the remaining rollbacks ran regardless.
    }
    return errors;
  }
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

/**
 * The step's result, or its signal's reason once aborted. A step is expected to stop when its
 * signal aborts; it gets a grace period to do so before the runner moves on to the rollbacks.
 */
async function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(asError(signal.reason));
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } catch (err) {
    if (!signal.aborted) throw err;
    await new Promise<void>((done) => {
      const timer = setTimeout(done, STOP_GRACE_MS);
      const settled = (): void => {
        clearTimeout(timer);
        done();
      };
      work.then(settled, settled);
    });
    throw asError(signal.reason);
  } finally {
    signal.removeEventListener('abort', onAbort!);
  }
}
