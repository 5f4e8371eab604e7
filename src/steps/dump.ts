// dump: write a process to an image directory. Ends the process afterwards unless leave-running.
import path from 'node:path';
import type { StepDefinition } from '../runner/types.js';
import { dumpProcess } from '../state/dump.js';
import { FrozenTree, type FreezeMethod } from '../state/freeze.js';

export interface DumpParams { pid: number; dir: string; 'leave-running'?: boolean; method?: FreezeMethod; 'shell-job'?: boolean }

const dump: StepDefinition<DumpParams> = {
  kind: 'dump',
  summary: 'Checkpoint a process into an image directory (frozen by an earlier freeze step, or here).',
  schema: {
    type: 'object',
    properties: {
      pid: { type: 'integer', minimum: 1, description: 'The process to dump.' },
      dir: { type: 'string', minLength: 1, description: 'Image directory (created 0700).' },
      'leave-running': { type: 'boolean', description: 'Let the process continue after the dump (default: end it).' },
      method: { enum: ['ptrace', 'cgroup'], description: 'How to freeze it when no freeze step did.' },
      'shell-job': { type: 'boolean', description: 'A process started from a shell: record its terminal, outside the tree, instead of refusing it.' },
    },
    required: ['pid', 'dir'],
    additionalProperties: false,
  },
  outputs: ['pid', 'dir', 'bytes', 'pages', 'processes', 'threads', 'fds'],
  title: (p) => `pid ${p.pid} → ${p.dir}`,

  async run(ctx, params) {
    const dir = path.resolve(ctx.cwd, params.dir);
    const result = await dumpProcess({
      pid: params.pid,
      dir,
      leaveRunning: params['leave-running'] ?? false,
      method: params.method,
      shellJob: params['shell-job'] ?? false,
      warn: (m) => ctx.log(`warning: ${m}`),
      frozen: FrozenTree.take(params.pid),
      signal: ctx.signal,
      progress: (done, total) => ctx.progress(done, total, 'bytes'),
    });
    ctx.log(`dumped ${result.pid}: ${(result.bytes / 1048576).toFixed(1)} MiB of memory, ${result.fds} fds into ${dir}`);
    return { ...result };
  },
};

export default dump;
