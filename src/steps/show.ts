// show: an image as readable text or JSON, every record checked on the way.
import path from 'node:path';
import type { StepDefinition } from '../runner/types.js';
import { summarizeImage } from '../state/show.js';

export interface ShowParams { dir: string }

const show: StepDefinition<ShowParams> = {
  kind: 'show',
  summary: 'Read an image and describe it (refusing a damaged one).',
  schema: {
    type: 'object',
    properties: { dir: { type: 'string', minLength: 1, description: 'Image directory.' } },
    required: ['dir'],
    additionalProperties: false,
  },
  outputs: ['image'],
  title: (p) => p.dir,

  async run(ctx, params) {
    const image = await summarizeImage(path.resolve(ctx.cwd, params.dir));
    ctx.log(`${image.processes.length} process(es), root ${image.manifest.root_pid}`);
    return { image };
  },
};

export default show;
