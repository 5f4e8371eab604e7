// assert: fail the pipeline unless an expression holds or a file contains a match.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { StepError } from '../runner/errors.js';
import type { StepDefinition } from '../runner/types.js';

export interface AssertParams {
  that?: string;
  'file-contains'?: { path: string; pattern: string };
  message?: string;
}

const assert: StepDefinition<AssertParams> = {
  kind: 'assert',
  summary: 'Fail unless an expression is true or a file contains a match.',
  schema: {
    type: 'object',
    properties: {
      that: { type: 'string', minLength: 1, description: 'Expression, e.g. "${steps.a.exit-code} == 0" (operators == and !=).' },
      'file-contains': {
        type: 'object',
        properties: {
          path: { type: 'string', minLength: 1, description: "The file; relative to the pipeline file's directory." },
          pattern: { type: 'string', minLength: 1, description: 'Regular expression (JavaScript syntax); ^ and $ match at each line.' },
        },
        required: ['path', 'pattern'],
        additionalProperties: false,
      },
      message: { type: 'string', minLength: 1, description: 'Said when the assertion fails.' },
    },
    additionalProperties: false,
    oneOf: [{ required: ['that'] }, { required: ['file-contains'] }],
  },
  outputs: ['match'],
  expressions: ['that'],
  title: (params) => params.that ?? `${params['file-contains']!.path} contains /${params['file-contains']!.pattern}/`,

  async run(ctx, params) {
    const prefix = params.message ?? 'assertion failed';
    if (params.that !== undefined) {
      const evaluation = ctx.evaluate(params.that);
      if (!evaluation.value) throw new StepError(`${prefix}: ${params.that} (${evaluation.shown})`);
      return {};
    }
    const { path, pattern } = params['file-contains']!;
    let regex: RegExp;
    try {
      regex = new RegExp(pattern, 'm');
    } catch (err) {
      throw new StepError(`invalid pattern /${pattern}/: ${(err as Error).message}`);
    }
    let text: string;
    try {
      text = await readFile(resolve(ctx.cwd, path), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new StepError(`${prefix}: cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    const match = regex.exec(text);
    if (!match) throw new StepError(`${prefix}: ${path} has no match for /${pattern}/`);
    return { match: match[0] };
  },
};

export default assert;
