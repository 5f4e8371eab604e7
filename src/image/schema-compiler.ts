// The validators of the image records, compiled from schemas/image/*.schema.json into AJV
// "standalone" code: at build time (compile-schemas.ts), since compiling takes a few hundred
// milliseconds that every ckpt command would otherwise pay.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type AnySchemaObject, type Options } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { ImageError } from './errors.js';
import { checkKind } from './names.js';
import { schemasDir, SUFFIX, VALIDATOR_MODULES } from './schemas.js';

/**
 * The code of the validators of every schemas/image/*.schema.json, as CommonJS modules, by
 * module file name. Draft-07 and 2020-12 schemas need different AJV classes; schemas of one
 * draft can $ref each other by file name.
 */
export function validatorModules(): Record<string, string> {
  const options: Options = {
    allErrors: true, strict: true, strictRequired: false, strictTypes: false, strictTuples: false, allowUnionTypes: true,
    code: { source: true },
  };
  const draft07 = new Ajv(options);
  const draft2020 = new Ajv2020(options);
  const exports07: Record<string, string> = {};
  const exports2020: Record<string, string> = {};
  const dir = schemasDir();
  for (const file of readdirSync(dir).filter((f) => f.endsWith(SUFFIX)).sort()) {
    const kind = file.slice(0, -SUFFIX.length);
    const where = path.join('schemas', 'image', file);
    let schema: AnySchemaObject;
    try {
      checkKind(kind);
      schema = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as AnySchemaObject;
    } catch (err) {
      throw new ImageError(`${where}: cannot load schema: ${(err as Error).message}`, { file: where, cause: err });
    }
    const is2020 = typeof schema.$schema === 'string' && schema.$schema.includes('2020-12');
    try {
      (is2020 ? draft2020 : draft07).addSchema(schema, file);
    } catch (err) {
      throw new ImageError(`${where}: invalid schema: ${(err as Error).message}`, { file: where, cause: err });
    }
    (is2020 ? exports2020 : exports07)[kind] = file;
  }
  try {
    return {
      [VALIDATOR_MODULES.draft07]: standaloneCode.default(draft07, exports07),
      [VALIDATOR_MODULES.draft2020]: standaloneCode.default(draft2020, exports2020),
    };
  } catch (err) {
    throw new ImageError(`schemas/image: invalid schema: ${(err as Error).message}`, { file: 'schemas/image', cause: err });
  }
}
