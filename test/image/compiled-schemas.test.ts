// The validators every command loads are compiled from schemas/image at build time: they must be
// those of the schemas as they are now.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { validatorModules } from '../../src/image/schema-compiler.js';
import { packageRoot } from '../helpers/index.js';

t.test('the compiled validators are those of schemas/image/*.schema.json', async (t) => {
  const built = path.join(packageRoot, 'dist', 'src', 'image');
  for (const [file, code] of Object.entries(validatorModules())) {
    t.ok(fs.readFileSync(path.join(built, file), 'utf8') === code, `${file} is up to date (npm run build compiles it)`);
  }
});
