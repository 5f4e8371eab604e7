// freeze: stop every thread of a process and hold it for the steps that follow (dump takes it).
import type { StepDefinition } from '../runner/types.js';
import { FrozenProcess, type FreezeMethod } from '../state/freeze.js';

export interface FreezeParams { pid: number; method?: FreezeMethod }

const freeze: StepDefinition<FreezeParams> = {
  kind: 'freeze',
  summary: 'Freeze a running process (all its threads) until a later step dumps it; thawed if the pipeline fails.',
  schema: {
    type: 'object',
    properties: {
      pid: { type: 'integer', minimum: 1, description: 'The process to freeze.' },
      method: { enum: ['ptrace', 'cgroup'], description: 'ptrace (default): seize and interrupt each thread; cgroup: freeze its cgroup first.' },
    },
    required: ['pid'],
    additionalProperties: false,
  },
  outputs: ['pid', 'threads'],
  title: (p) => `pid ${p.pid}`,

  async run(ctx, params) {
    const frozen = FrozenProcess.freeze(params.pid, params.method ?? 'ptrace');
    frozen.hold();
    ctx.addRollback(`thaw ${params.pid}`, () => frozen.thaw());
    ctx.log(`froze ${params.pid} (${frozen.threads.length} thread${frozen.threads.length === 1 ? '' : 's'}, ${frozen.method})`);
    return { pid: params.pid, threads: frozen.threads.length };
  },
};

export default freeze;
