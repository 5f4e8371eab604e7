// The pipeline JSON Schema, composed from each step module's own params schema. The runner
// validates with it, `ckpt schema` prints it, and schemas/pipeline.schema.json is a copy of it
// for editors (`npm run schema` regenerates the copy; a test keeps them equal).
import { durationSchema } from './duration.js';
import { NAME_PATTERN } from './template.js';
import type { StepDefinition } from './types.js';

/** Keys a step item may carry besides its kind. */
export const STEP_KEYS = ['id', 'timeout', 'continue-on-error', 'if'] as const;

/** Top-level keys of a pipeline. */
export const PIPELINE_KEYS = ['version', 'name', 'vars', 'steps'] as const;

export function composePipelineSchema(steps: readonly StepDefinition[]): Record<string, unknown> {
  const kinds = steps.map((step) => step.kind);
  const definitions: Record<string, unknown> = {};
  for (const step of steps) definitions[step.kind] = { description: step.summary, ...step.schema };

  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    title: 'ckpt pipeline',
    description: 'A ckpt pipeline: steps run in order by `ckpt run FILE`.',
    type: 'object',
    properties: {
      version: { description: 'Pipeline format version.', const: 1 },
      name: { description: 'Name shown when the pipeline runs.', type: 'string', minLength: 1 },
      vars: {
        description: 'Values for ${name} references; `--set name=value` overrides them.',
        type: 'object',
        propertyNames: { pattern: NAME_PATTERN },
        additionalProperties: { type: ['string', 'number', 'boolean'] },
      },
      steps: { description: 'Steps, run in order.', type: 'array', minItems: 1, items: { $ref: '#/definitions/step' } },
    },
    required: ['version', 'name', 'steps'],
    additionalProperties: false,
    definitions: {
      step: {
        description: `One step: exactly one of ${kinds.join(', ')}, plus optional ${STEP_KEYS.join(', ')}.`,
        type: 'object',
        properties: {
          id: {
            description: 'Name by which later steps read its outputs: ${steps.ID.OUTPUT}.',
            type: 'string',
            pattern: NAME_PATTERN,
          },
          timeout: { ...durationSchema, description: 'Fail the step if it runs longer, e.g. "30s", "2m".' },
          'continue-on-error': { description: 'Go on with the next step if this one fails.', type: 'boolean' },
          if: { description: 'Run the step only if this expression is true, e.g. "${steps.a.exit-code} == 0".', type: 'string' },
          ...Object.fromEntries(kinds.map((kind) => [kind, { $ref: `#/definitions/${kind}` }])),
        },
        additionalProperties: false,
        oneOf: kinds.map((kind) => ({ required: [kind] })),
      },
      ...definitions,
    },
  };
}
