// restore: bring a process back from an image, with its original PID.
import fs from 'node:fs';
import path from 'node:path';
import type { StepDefinition } from '../runner/types.js';
import { restoreProcess, waitForExit } from '../state/restore.js';

export interface RestoreParams { dir: string; detach?: boolean; pidfile?: string }

const restore: StepDefinition<RestoreParams> = {
  kind: 'restore',
  summary: 'Restore a process from an image directory; by default wait for it to exit.',
  schema: {
    type: 'object',
    properties: {
      dir: { type: 'string', minLength: 1, description: 'Image directory written by dump.' },
      detach: { type: 'boolean', description: 'Return once the process runs (default: wait for its exit and report its status).' },
      pidfile: { type: 'string', minLength: 1, description: 'Write the restored PID to this file.' },
    },
    required: ['dir'],
    additionalProperties: false,
  },
  outputs: ['pid', 'exit-code'],
  title: (p) => p.dir,

  async run(ctx, params) {
    const dir = path.resolve(ctx.cwd, params.dir);
    const { pid } = await restoreProcess({
      dir,
      signal: ctx.signal,
      progress: (done, total) => ctx.progress(done, total, 'bytes'),
      warn: (m) => ctx.log(`warning: ${m}`),
    });
    if (params.pidfile) fs.writeFileSync(path.resolve(ctx.cwd, params.pidfile), `${pid}\n`);
    ctx.log(`restored ${pid}`);
    if (params.detach) return { pid };
    return { pid, 'exit-code': await waitForExit(pid, ctx.signal) };
  },
};

export default restore;
