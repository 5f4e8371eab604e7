// spawn: start a command in the background, in its own session, and go on. If the pipeline
// fails or is interrupted, its rollback stops the command's whole process group.
import { spawn as startProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { resolve } from 'node:path';
import { StepError } from '../runner/errors.js';
import type { StepDefinition } from '../runner/types.js';
import { checkDirectory, commandEnv, commandProperties, shortCommand, stopGroup } from './shell.js';

export interface SpawnParams {
  run: string;
  cwd?: string;
  env?: Record<string, string | number | boolean>;
  stdout?: string;
  stderr?: string;
}

const spawn: StepDefinition<SpawnParams> = {
  kind: 'spawn',
  summary: 'Start a command in the background in its own session; outputs its pid.',
  schema: {
    type: 'object',
    properties: {
      ...commandProperties,
      stdout: { type: 'string', minLength: 1, description: 'File that receives its stdout (truncated first); default: discarded.' },
      stderr: { type: 'string', minLength: 1, description: 'File that receives its stderr; may be the stdout file.' },
    },
    required: ['run'],
    additionalProperties: false,
  },
  outputs: ['pid'],
  title: (params) => params.run,

  async run(ctx, params) {
    const cwd = resolve(ctx.cwd, params.cwd ?? '.');
    await checkDirectory(cwd);
    const fds: number[] = [];
    const open = (file: string | undefined): number | 'ignore' => {
      if (file === undefined) return 'ignore';
      try {
        const fd = openSync(resolve(ctx.cwd, file), 'w', 0o644);
        fds.push(fd);
        return fd;
      } catch (err) {
        throw new StepError(`cannot open ${file}: ${(err as Error).message}`, { cause: err });
      }
    };
    try {
      const stdout = open(params.stdout);
      // One description for both when they name the same file, so lines interleave instead of overwriting.
      const same = params.stdout !== undefined && params.stderr !== undefined && resolve(ctx.cwd, params.stdout) === resolve(ctx.cwd, params.stderr);
      const stderr = same ? stdout : open(params.stderr);
      // detached: its own session, so it outlives ckpt and its group can be stopped as one.
      const child = startProcess('/bin/sh', ['-c', params.run], {
        cwd,
        env: commandEnv(params.env),
        detached: true,
        stdio: ['ignore', stdout, stderr],
      });
      await new Promise<void>((started, failed) => {
        child.once('spawn', started);
        child.once('error', (err) => failed(new StepError(`cannot start "${shortCommand(params.run)}": ${err.message}`, { cause: err })));
      });
      // The pipeline's end must not wait for it.
      child.unref();
      const pid = child.pid!;
      ctx.log(`started pid ${pid}`);
      ctx.addRollback(`stop pid ${pid} (${shortCommand(params.run)})`, () => stopGroup(child));
      return { pid };
    } finally {
      // The child has its own copies.
      for (const fd of fds) closeSync(fd);
    }
  },
};

export default spawn;
