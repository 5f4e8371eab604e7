import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { composePipelineSchema } from '../../src/runner/schema.js';
import { builtinSteps } from '../../src/steps/index.js';
import { root } from './helpers.js';

t.test('schemas/pipeline.schema.json is the schema composed from the step registry', async (t) => {
  const committed = JSON.parse(await readFile(join(root, 'schemas/pipeline.schema.json'), 'utf8'));
  t.same(committed, composePipelineSchema(builtinSteps), 'out of date: run `npm run schema`');
});

t.test('every step kind has a params schema that closes its options', async (t) => {
  for (const step of builtinSteps) {
    t.match(step.schema, { type: 'object', additionalProperties: false }, step.kind);
    t.ok(step.summary.length > 0, `${step.kind} has a summary`);
  }
});
