import { createRequire } from 'node:module';
import path from 'node:path';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { ImageError } from './errors.js';
import { checkKind } from './names.js';
import { packageRoot } from './package.js';

/** The "$format" every record carries; a reader refuses records of any other. */
export const RECORD_FORMAT = 1;

export const SUFFIX = '.schema.json';

/** The validators compiled from the schemas at build time (schema-compiler.ts), one module per JSON Schema draft. */
export const VALIDATOR_MODULES = { draft07: 'schema-validators-07.cjs', draft2020: 'schema-validators-2020.cjs' } as const;

export function schemasDir(): string {
  return path.join(packageRoot(), 'schemas', 'image');
}

let validators: Map<string, ValidateFunction> | undefined;

/** The validator of every record kind, from the modules compiled at build time. */
export function loadSchemas(): Map<string, ValidateFunction> {
  if (validators) return validators;
  const load = createRequire(import.meta.url);
  const compiled = new Map<string, ValidateFunction>();
  for (const file of Object.values(VALIDATOR_MODULES)) {
    let mod: Record<string, ValidateFunction>;
    try {
      mod = load(`./${file}`) as Record<string, ValidateFunction>;
    } catch (err) {
      throw new ImageError(`${file}: the image schemas are not compiled (npm run build compiles them): ${(err as Error).message}`, { file, cause: err });
    }
    for (const [kind, validate] of Object.entries(mod)) compiled.set(kind, validate);
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
