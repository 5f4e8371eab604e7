// sleep: wait a number of seconds (interrupted by SIGINT/SIGTERM and timeouts like any step).
import { setTimeout as delay } from 'node:timers/promises';
import type { StepDefinition } from '../runner/types.js';

export interface SleepParams {
  seconds: number;
}

const sleep: StepDefinition<SleepParams> = {
  kind: 'sleep',
  summary: 'Wait a number of seconds.',
  schema: {
    type: 'object',
    properties: { seconds: { type: 'number', minimum: 0, description: 'Seconds to wait; fractions allowed.' } },
    required: ['seconds'],
    additionalProperties: false,
  },
  outputs: [],
  title: (params) => `${params.seconds}s`,

  async run(ctx, params) {
    await delay(params.seconds * 1000, undefined, { signal: ctx.signal });
  },
};

export default sleep;
