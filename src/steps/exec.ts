// exec: run a shell command to completion; its stdout and exit code become outputs.
import { resolve } from 'node:path';
import { StepError } from '../runner/errors.js';
import type { StepDefinition } from '../runner/types.js';
import { commandEnv, commandProperties, runShell, shortCommand } from './shell.js';

export interface ExecParams {
  run: string;
  cwd?: string;
  env?: Record<string, string | number | boolean>;
  'expect-exit': number;
  rollback?: string;
}

const exec: StepDefinition<ExecParams> = {
  kind: 'exec',
  summary: 'Run a shell command and wait for it; outputs its stdout and exit code.',
  schema: {
    type: 'object',
    properties: {
      ...commandProperties,
      'expect-exit': { type: 'integer', default: 0, description: 'Exit code that counts as success.' },
      rollback: {
        type: 'string',
        minLength: 1,
        description:
          'Command to run if the pipeline fails or is interrupted after this step succeeded; $CKPT_STDOUT holds the stdout output.',
      },
    },
    required: ['run'],
    additionalProperties: false,
  },
  outputs: ['stdout', 'exit-code'],
  title: (params) => params.run,

  async run(ctx, params) {
    const cwd = resolve(ctx.cwd, params.cwd ?? '.');
    const env = commandEnv(params.env);
    const result = await runShell(params.run, { cwd, env, signal: ctx.signal, onLine: (line) => ctx.log(line) });
    // Like shell command substitution: trailing newlines are not part of the value.
    const outputs = { stdout: result.stdout.replace(/\n+$/, ''), 'exit-code': result.exitCode };
    if (result.exitCode !== params['expect-exit']) {
      const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
      const detail = result.lastError ? `: ${result.lastError}` : '';
      throw new StepError(`"${shortCommand(params.run)}" ${how} (expected ${params['expect-exit']})${detail}`, { outputs });
    }
    const undo = params.rollback;
    if (undo !== undefined) {
      ctx.addRollback(`exec: ${shortCommand(undo)}`, async () => {
        const done = await runShell(undo, { cwd, env: { ...env, CKPT_STDOUT: outputs.stdout } });
        if (done.exitCode !== 0) {
          throw new StepError(`"${shortCommand(undo)}" exited with code ${done.exitCode}${done.lastError ? `: ${done.lastError}` : ''}`);
        }
      });
    }
    return outputs;
  },
};

export default exec;
