// freeze: stop every thread of a process and hold it for the steps that follow (dump takes it).
import type { StepDefinition } from '../runner/types.js';
import { FrozenTree, type FreezeMethod } from '../state/freeze.js';

export interface FreezeParams { pid: number; method?: FreezeMethod }

const freeze: StepDefinition<FreezeParams> = {
  kind: 'freeze',
  summary: 'Freeze a running process tree (every thread of every process) until a later step dumps it; thawed if the pipeline fails.',
  schema: {
    type: 'object',
    properties: {
      pid: { type: 'integer', minimum: 1, description: 'The process to freeze.' },
      method: { enum: ['ptrace', 'cgroup'], description: 'ptrace (default): seize and interrupt each thread; cgroup: freeze its cgroup first.' },
    },
    required: ['pid'],
    additionalProperties: false,
  },
  outputs: ['pid', 'processes', 'threads'],
  title: (p) => `pid ${p.pid}`,

  async run(ctx, params) {
    const frozen = FrozenTree.freeze(params.pid, params.method ?? 'ptrace');
    frozen.hold();
    ctx.addRollback(`thaw ${params.pid}`, () => frozen.thaw());
    ctx.log(`froze ${params.pid}: ${frozen.processes.size} process(es), ${frozen.threadCount} thread(s), ${frozen.method}`);
    return { pid: params.pid, processes: frozen.processes.size, threads: frozen.threadCount };
  },
};

export default freeze;
