// Where a run's events go: a live listr2 task list on a terminal, plain lines in CI and pipes,
// one JSON object per line with --json, or nowhere (tests, library use).
import {
  ListrLogger,
  PRESET_TIMER,
  ProcessOutput,
  type ListrDefaultRendererOptions,
  type ListrSimpleRendererOptions,
} from 'listr2';
import { formatDuration } from './duration.js';
import type { OutputMode, PlannedStep, ProgressUnit, RunEvent, RunOptions } from './types.js';

export type ResolvedMode = Exclude<OutputMode, 'auto'>;

function inCi(env: Record<string, string | undefined>): boolean {
  const ci = env['CI'];
  return ci !== undefined && ci !== '' && ci !== 'false' && ci !== '0';
}

export class Output {
  readonly mode: ResolvedMode;
  private readonly stdout: NodeJS.WritableStream;
  /** The stream the task list is drawn on. */
  private readonly listStream: NodeJS.WritableStream;

  constructor(private readonly options: RunOptions, env: Record<string, string | undefined>) {
    this.stdout = options.stdout ?? process.stdout;
    this.listStream = options.progressToStderr ? (options.stderr ?? process.stderr) : this.stdout;
    const requested = options.output ?? 'auto';
    if (requested !== 'auto') this.mode = requested;
    else this.mode = (this.listStream as { isTTY?: boolean }).isTTY && !inCi(env) ? 'tty' : 'plain';
  }

  emit(event: RunEvent): void {
    this.options.onEvent?.(event);
    if (this.mode === 'json') this.stdout.write(`${JSON.stringify(event, jsonSafe)}\n`);
    else if (event.event === 'pipeline-start') this.pipelineName = event.name;
    // Failures are summed up by whoever called the runner (the CLI's one-line error).
    else if (event.event === 'pipeline-end' && event.status === 'ok' && (this.mode === 'tty' || this.mode === 'plain')) {
      this.listStream.write(`pipeline '${this.pipelineName}' succeeded in ${formatDuration(event.duration_ms)}\n`);
    }
  }

  private pipelineName = '';

  /** Minimum milliseconds between two progress updates of a step. */
  get progressInterval(): number {
    return this.mode === 'plain' ? 1000 : 100;
  }

  /** listr2 options for this mode: its renderers draw the task list; JSON comes from emit(). */
  listrOptions():
    | { renderer: 'silent' }
    | { renderer: 'simple'; rendererOptions: ListrSimpleRendererOptions }
    | { renderer: 'default'; rendererOptions: ListrDefaultRendererOptions } {
    if (this.mode === 'json' || this.mode === 'silent') return { renderer: 'silent' };
    const stream = this.listStream as NodeJS.WriteStream;
    const logger = new ListrLogger({ useIcons: true, toStderr: [], processOutput: new ProcessOutput(stream, stream) });
    if (this.mode === 'plain') return { renderer: 'simple', rendererOptions: { logger, timer: PRESET_TIMER } };
    // Keep the step's title in view and show skip reasons and errors under it.
    return {
      renderer: 'default',
      rendererOptions: { logger, timer: PRESET_TIMER, collapseSkips: false, collapseErrors: false },
    };
  }

  /** `--dry-run`: the plan, as text or one JSON event. */
  plan(name: string, file: string | undefined, steps: PlannedStep[]): void {
    this.emit({ event: 'plan', name, file: file ?? null, steps });
    if (this.mode === 'json' || this.mode === 'silent') return;
    const lines = [`Plan for '${name}'${file ? ` (${file})` : ''}: ${steps.length} step${steps.length === 1 ? '' : 's'}`];
    for (const step of steps) {
      lines.push(`  ${step.index + 1}. ${step.title}`);
      lines.push(`       ${JSON.stringify(step.params, jsonSafe)}`);
      const extras = [
        step.if !== null ? `if ${step.if}` : undefined,
        step.timeout_ms !== null ? `timeout ${formatDuration(step.timeout_ms)}` : undefined,
        step.continue_on_error ? 'continue on error' : undefined,
      ].filter((extra) => extra !== undefined);
      if (extras.length > 0) lines.push(`       ${extras.join(', ')}`);
    }
    this.stdout.write(`${lines.join('\n')}\n`);
  }
}

/** Outputs may hold BigInts (addresses); JSON has no such type. */
export function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

/** "12.0 MiB / 100.0 MiB (45.3 MiB/s)" or "3/10 items". */
export function formatProgress(done: number, total: number, unit: ProgressUnit | undefined, elapsedMs: number): string {
  if (unit === 'bytes') {
    const rate = elapsedMs > 0 ? ` (${formatBytes((done * 1000) / elapsedMs)}/s)` : '';
    return `${formatBytes(done)} / ${formatBytes(total)}${rate}`;
  }
  return `${done}/${total}${unit === 'items' ? ' items' : ''}`;
}
