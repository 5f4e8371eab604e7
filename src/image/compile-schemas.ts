// Build step (npm run build, npm test): compiles schemas/image/*.schema.json into the validator
// modules that every ckpt command loads next to this file.
import { writeFileSync } from 'node:fs';
import { validatorModules } from './schema-compiler.js';

for (const [file, code] of Object.entries(validatorModules())) {
  writeFileSync(new URL(`./${file}`, import.meta.url), code);
}
