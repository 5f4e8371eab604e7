// Shell commands for the exec and spawn steps. Each command gets its own session and process
// group, so that stopping it also stops whatever it started (`sh -c "make"` -> make -> cc).
import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { constants } from 'node:os';
import { StepError } from '../runner/errors.js';

const TERM_GRACE_MS = 2000;
/** How long output may still arrive after the command exits (a background child may hold the pipe). */
const DRAIN_MS = 200;

export type Env = Record<string, string | undefined>;

/** The schema properties of a step that runs a shell command: run, cwd, env. */
export const commandProperties = {
  run: { type: 'string', minLength: 1, description: 'Command, run with /bin/sh -c.' },
  cwd: { type: 'string', description: "Working directory; relative to the pipeline file's directory." },
  env: {
    type: 'object',
    additionalProperties: { type: ['string', 'number', 'boolean'] },
    description: "Environment variables added to ckpt's own.",
  },
} as const;

/** process.env plus the step's `env:`, whose values may be numbers or booleans in YAML. */
export function commandEnv(extra: Record<string, unknown> | undefined): Env {
  const env: Env = { ...process.env };
  for (const [key, value] of Object.entries(extra ?? {})) env[key] = String(value);
  return env;
}

export async function checkDirectory(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) throw new StepError(`working directory ${dir} does not exist`);
}

/** The command as shown in messages: one line, at most 60 characters. */
export function shortCommand(command: string): string {
  const line = command.replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 57)}...` : line;
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    // ESRCH: the whole group is gone already.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

/** SIGTERM to the child's process group, SIGKILL if its leader is still there after a grace period. */
export async function stopGroup(child: ChildProcess): Promise<void> {
  const pid = child.pid;
  if (pid === undefined) return;
  signalGroup(pid, 'SIGTERM');
  if (await waitExit(child, TERM_GRACE_MS)) return;
  signalGroup(pid, 'SIGKILL');
  if (!(await waitExit(child, TERM_GRACE_MS))) throw new Error(`process ${pid} did not exit after SIGKILL`);
}

export interface ShellResult {
  exitCode: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** The last non-empty line written to stderr, for error messages. */
  lastError: string;
}

export interface ShellOptions {
  cwd: string;
  env: Env;
  signal?: AbortSignal;
  onLine?: (line: string) => void;
}

/** Runs `sh -c command` to completion; aborting the signal stops its whole process group. */
export async function runShell(command: string, options: ShellOptions): Promise<ShellResult> {
  await checkDirectory(options.cwd);
  options.signal?.throwIfAborted();
  const child = spawn('/bin/sh', ['-c', command], {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let lastError = '';
  const lines = (onText: (text: string) => void) => {
    let partial = '';
    return (chunk: Buffer): void => {
      const text = partial + chunk.toString('utf8');
      const parts = text.split('\n');
      partial = parts.pop()!;
      for (const line of parts) onText(line);
    };
  };
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stdout!.on('data', lines((line) => options.onLine?.(line)));
  child.stderr!.on(
    'data',
    lines((line) => {
      if (line.trim()) lastError = line.trim();
      options.onLine?.(line);
    }),
  );

  const stop = (): void => void stopGroup(child).catch(() => undefined);
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', (err) => reject(new StepError(`cannot run "${shortCommand(command)}": ${err.message}`, { cause: err })));
      child.once('exit', (exitCode, signalCode) => resolve([exitCode, signalCode]));
    });
    await drain(child);
    const exitCode = code ?? 128 + (constants.signals[signal!] ?? 0);
    return { exitCode, signal, stdout, lastError };
  } finally {
    options.signal?.removeEventListener('abort', stop);
  }
}

/** Waits for the rest of the output, but not for background processes that inherited the pipes. */
async function drain(child: ChildProcess): Promise<void> {
  const streams = [child.stdout!, child.stderr!].filter((stream) => !stream.closed);
  await Promise.race([
    Promise.all(streams.map((stream) => new Promise((resolve) => stream.once('close', resolve)))),
    new Promise((resolve) => setTimeout(resolve, DRAIN_MS).unref()),
  ]);
  for (const stream of streams) stream.destroy();
}
