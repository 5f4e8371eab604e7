// check: which kernel features ckpt relies on work here (each tried for real).
import type { StepDefinition } from '../runner/types.js';
import { StepError } from '../runner/errors.js';
import { runProbes } from '../sys/probes.js';

const check: StepDefinition<Record<string, never>> = {
  kind: 'check',
  summary: 'Probe the kernel features ckpt uses; fails if dump/restore cannot work here.',
  schema: { type: 'object', properties: {}, additionalProperties: false },
  outputs: ['features', 'usable'],

  async run(ctx) {
    const features = runProbes();
    for (const f of features) ctx.log(`${f.ok ? 'ok  ' : 'MISS'} ${f.feature}${f.detail ? `: ${f.detail}` : ''}`);
    const missing = features.filter((f) => f.required && !f.ok);
    const usable = missing.length === 0;
    if (!usable) {
      throw new StepError(`dump/restore cannot work here: ${missing.map((f) => f.feature).join(', ')} missing`, { outputs: { features, usable } });
    }
    return { features, usable };
  },
};

export default check;
