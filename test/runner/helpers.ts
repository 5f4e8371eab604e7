// Shared by the runner tests: paths, pipelines written to temporary files, and the CLI run
// as a separate process.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runPipelineFile, type RunEvent, type RunOptions, type RunResult } from '../../src/runner/index.js';

/** The repository root (tests run compiled, from dist/test/runner). */
export const root = fileURLToPath(new URL('../../../', import.meta.url));
export const fixtures = join(root, 'test/runner/pipelines');
export const bin = join(root, 'bin/ckpt.js');

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh directory, removed when the test ends. */
export async function scratch(t: Teardown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-runner-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `yaml` to a file in `dir` and runs it silently, collecting its events. */
export async function runYaml(
  dir: string,
  yaml: string,
  options: RunOptions = {},
): Promise<{ result: RunResult; events: RunEvent[]; file: string }> {
  const file = join(dir, 'pipeline.yaml');
  await writeFile(file, yaml);
  const events: RunEvent[] = [];
  const result = await runPipelineFile(file, { output: 'silent', onEvent: (event) => events.push(event), ...options });
  return { result, events, file };
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment as a user's shell would pass it: without tap's loaders for its own processes. */
export function userEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => name !== 'NODE_OPTIONS' && !name.startsWith('_TAPJS_')));
}

/** Runs `node bin/ckpt.js ...args` and waits for it. */
export function cli(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const env = userEnv(options.env);
    execFile(process.execPath, [bin, ...args], { cwd: options.cwd ?? root, env }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Events of a --json run, one per line. */
export function jsonLines(stdout: string): RunEvent[] {
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as RunEvent);
}
