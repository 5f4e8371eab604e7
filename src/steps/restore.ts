// restore: bring a process back from an image, with its original PID.
import fs from 'node:fs';
import path from 'node:path';
import { StepError } from '../runner/errors.js';
import type { StepDefinition } from '../runner/types.js';
import { restoreInNewPidNamespace } from '../state/pidns.js';
import { restoreProcess, waitForExit } from '../state/restore.js';

export interface RestoreParams { dir: string; detach?: boolean; pidfile?: string; 'pid-ns'?: boolean; 'shell-job'?: boolean }

const restore: StepDefinition<RestoreParams> = {
  kind: 'restore',
  summary: 'Restore a process from an image directory; by default wait for it to exit.',
  schema: {
    type: 'object',
    properties: {
      dir: { type: 'string', minLength: 1, description: 'Image directory written by dump.' },
      detach: { type: 'boolean', description: 'Return once the process runs (default: wait for its exit and report its status).' },
      pidfile: { type: 'string', minLength: 1, description: 'Write the restored PID to this file.' },
      'pid-ns': {
        type: 'boolean',
        description: 'Restore into a new PID namespace (for when the PIDs are taken here); implies detach. pid is the PID seen from here.',
      },
      'shell-job': {
        type: 'boolean',
        description: 'Restore a shell job (dumped with shell-job): its terminal is ckpt\'s, it stays in ckpt\'s session, in the foreground if it was.',
      },
    },
    required: ['dir'],
    additionalProperties: false,
  },
  outputs: ['pid', 'exit-code', 'ns-pid', 'ns-init'],
  title: (p) => p.dir,

  async run(ctx, params) {
    const dir = path.resolve(ctx.cwd, params.dir);
    if (params['pid-ns']) {
      // The restore inside the namespace runs with no terminal to give a shell job.
      if (params['shell-job']) throw new StepError('shell-job and pid-ns cannot be combined');
      const r = await restoreInNewPidNamespace(dir, ctx.signal);
      if (params.pidfile) fs.writeFileSync(path.resolve(ctx.cwd, params.pidfile), `${r.hostPid}\n`);
      ctx.log(`restored ${r.pid} in a new PID namespace (PID ${r.hostPid} here; its init is ${r.initPid})`);
      return { pid: r.hostPid, 'ns-pid': r.pid, 'ns-init': r.initPid };
    }
    const { pid } = await restoreProcess({
      dir,
      signal: ctx.signal,
      progress: (done, total) => ctx.progress(done, total, 'bytes'),
      warn: (m) => ctx.log(`warning: ${m}`),
      shellJob: params['shell-job'] ?? false,
    });
    if (params.pidfile) fs.writeFileSync(path.resolve(ctx.cwd, params.pidfile), `${pid}\n`);
    ctx.log(`restored ${pid}`);
    if (params.detach) return { pid };
    return { pid, 'exit-code': await waitForExit(pid, ctx.signal) };
  },
};

export default restore;
