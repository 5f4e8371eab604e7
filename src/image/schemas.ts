import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type AnySchemaObject, type ErrorObject, type Options, type ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { ImageError } from './errors.js';
import { checkKind } from './names.js';
import { packageRoot } from './package.js';

/** The "$format" every record carries; a reader refuses records of any other. */
export const RECORD_FORMAT = 1;

const SUFFIX = '.schema.json';

export function schemasDir(): string {
  return path.join(packageRoot(), 'schemas', 'image');
}

let validators: Map<string, ValidateFunction> | undefined;

/**
 * Compiles every schemas/image/*.schema.json once per process. Draft-07 and 2020-12
 * schemas need different AJV classes; schemas of one draft can $ref each other by file name.
 */
export function loadSchemas(): Map<string, ValidateFunction> {
  if (validators) return validators;
  // Unoptimized code compiles in well under half the time, and these records are small: every
  // ckpt command starts by compiling them.
  const options: Options = {
    allErrors: true, strict: true, strictRequired: false, strictTypes: false, strictTuples: false, allowUnionTypes: true, code: { optimize: false },
  };
  const draft07 = new Ajv(options);
  const draft2020 = new Ajv2020(options);
  const dir = schemasDir();
  const files = readdirSync(dir).filter((f) => f.endsWith(SUFFIX)).sort();
  const added: [kind: string, file: string, ajv: Ajv | Ajv2020][] = [];
  for (const file of files) {
    const kind = file.slice(0, -SUFFIX.length);
    const where = path.join('schemas', 'image', file);
    let schema: AnySchemaObject;
    try {
      checkKind(kind);
      schema = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as AnySchemaObject;
    } catch (err) {
      throw new ImageError(`${where}: cannot load schema: ${(err as Error).message}`, { file: where, cause: err });
    }
    const ajv = typeof schema.$schema === 'string' && schema.$schema.includes('2020-12') ? draft2020 : draft07;
    try {
      ajv.addSchema(schema, file);
    } catch (err) {
      throw new ImageError(`${where}: invalid schema: ${(err as Error).message}`, { file: where, cause: err });
    }
    added.push([kind, file, ajv]);
  }
  const compiled = new Map<string, ValidateFunction>();
  for (const [kind, file, ajv] of added) {
    try {
      compiled.set(kind, ajv.getSchema(file)!);
    } catch (err) {
      const where = path.join('schemas', 'image', file);
      throw new ImageError(`${where}: invalid schema: ${(err as Error).message}`, { file: where, cause: err });
    }
  }
  validators = compiled;
  return compiled;
}

function describe(e: ErrorObject): string {
  const where = e.instancePath === '' ? '/' : e.instancePath;
  const p = e.params as Record<string, unknown>;
  if (e.keyword === 'false schema') return `${where} is not allowed here`;
  let detail = e.message ?? e.keyword;
  if (e.propertyName !== undefined) detail = `property name ${JSON.stringify(e.propertyName)} ${detail}`;
  if (e.keyword === 'additionalProperties') detail += ` (${JSON.stringify(p.additionalProperty)})`;
  else if (e.keyword === 'enum') detail += ` (${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')})`;
  else if (e.keyword === 'const') detail += ` (${JSON.stringify(p.allowedValue)})`;
  return `${where} ${detail}`;
}

/** AJV adds summary errors ("must match "then" schema", "property name must be valid") after the specific ones. */
function isSummary(e: ErrorObject): boolean {
  return e.keyword === 'if' || e.keyword === 'propertyNames';
}

function check(kind: string, data: unknown, file: string): void {
  const validate = loadSchemas().get(kind);
  if (!validate) {
    throw new ImageError(`${file}: no schema for record kind "${kind}" (schemas/image/${kind}${SUFFIX})`, { file });
  }
  if (validate(data)) return;
  const all = validate.errors ?? [];
  const specific = all.filter((e) => !isSummary(e));
  const errors = specific.length > 0 ? specific : all;
  const shown = errors.slice(0, 8).map(describe);
  if (errors.length > shown.length) shown.push(`and ${errors.length - shown.length} more`);
  throw new ImageError(`${file}: does not match schemas/image/${kind}${SUFFIX}: ${shown.join('; ')}`, { file });
}

/**
 * Checks a record against its kind's schema. "$format" is checked first, so a record
 * written by a newer ckpt is refused for what it is rather than for its unknown fields.
 * `file` names the record in messages (default "<kind> record").
 */
export function validateRecord(kind: string, data: unknown, file = `${kind} record`): void {
  checkKind(kind);
  if (kind === 'manifest') throw new ImageError(`${file}: "manifest" is not a record kind`, { file });
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ImageError(`${file}: a record must be a JSON object`, { file });
  }
  const format = (data as { $format?: unknown }).$format;
  if (format === undefined) throw new ImageError(`${file}: no "$format" field`, { file });
  if (typeof format === 'number' && Number.isInteger(format) && format > RECORD_FORMAT) {
    throw new ImageError(`${file}: record format ${format} is newer than this ckpt reads (${RECORD_FORMAT}); use a newer ckpt`, { file });
  }
  if (format !== RECORD_FORMAT) throw new ImageError(`${file}: unsupported record format ${JSON.stringify(format)} (this ckpt reads ${RECORD_FORMAT})`, { file });
  check(kind, data, file);
}

/** The manifest's schema check; its "format" is checked by the reader before this. */
export function validateManifest(data: unknown, file: string): void {
  check('manifest', data, file);
}
