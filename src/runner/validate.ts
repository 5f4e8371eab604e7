// Checks a whole pipeline before anything runs and turns it into a plan. Every problem is
// collected (schema, references, expressions, ids) and reported at its YAML position.
import { dirname, resolve } from 'node:path';
import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import { DURATION_PATTERN, parseDuration } from './duration.js';
import { PipelineError, type Problem } from './errors.js';
import { ExpressionSyntaxError, parseExpression, type Expression } from './expression.js';
import { composePipelineSchema, PIPELINE_KEYS, STEP_KEYS } from './schema.js';
import type { Path, PipelineSource } from './source.js';
import { didYouMean, nearest } from './suggest.js';
import { interpolate, interpolateTree, NAME_PATTERN, scan, stringify, type Reference } from './template.js';
import type { StepDefinition } from './types.js';

// ajv is CommonJS; under NodeNext its class is the default export's default.
const Ajv = AjvModule.default;

export interface PlanStep {
  index: number;
  id?: string;
  kind: string;
  definition: StepDefinition;
  /** As written: references are substituted right before the step runs. */
  params: Record<string, unknown>;
  title: string;
  /** params with vars and env substituted, step outputs still as written: for the plan. */
  preview: Record<string, unknown>;
  timeoutMs?: number;
  timeoutText?: string;
  condition?: Expression;
  continueOnError: boolean;
  path: Path;
}

export interface Plan {
  name: string;
  file?: string;
  cwd: string;
  vars: Record<string, unknown>;
  env: Record<string, string | undefined>;
  steps: PlanStep[];
  source: PipelineSource;
  registry: Registry;
}

export interface ValidateOptions {
  steps: readonly StepDefinition[];
  set?: Record<string, string>;
  env: Record<string, string | undefined>;
  cwd?: string;
}

/** Step kinds with their compiled validators. */
export interface Registry {
  kinds: Map<string, StepDefinition>;
  pipeline: ValidateFunction;
  /** Validates params after substitution, converting "42" to 42 where a number is wanted. */
  params: Map<string, ValidateFunction>;
}

const registries = new WeakMap<readonly StepDefinition[], Registry>();

export function registryFor(steps: readonly StepDefinition[]): Registry {
  const cached = registries.get(steps);
  if (cached) return cached;
  const kinds = new Map<string, StepDefinition>();
  for (const step of steps) {
    if (kinds.has(step.kind)) throw new Error(`step kind '${step.kind}' is registered twice`);
    if ((STEP_KEYS as readonly string[]).includes(step.kind) || step.kind === 'step') {
      throw new Error(`step kind '${step.kind}' collides with a reserved step key`);
    }
    kinds.set(step.kind, step);
  }
  // Unoptimized code compiles in well under half the time; pipelines are small.
  const options = { allErrors: true, verbose: true, strict: true, strictRequired: false, allowUnionTypes: true, code: { optimize: false } };
  const pipeline = new Ajv(options).compile(composePipelineSchema(steps));
  const runtime = new Ajv({ ...options, coerceTypes: true, useDefaults: true });
  const params = new Map(steps.map((step) => [step.kind, runtime.compile(step.schema)]));
  const registry = { kinds, pipeline, params };
  registries.set(steps, registry);
  return registry;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function formatPath(path: Path): string {
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? part : `.${part}`)).join('');
}

/** Collects problems with their positions; without a position, the path says where. */
class Problems {
  readonly list: Problem[] = [];
  private readonly seen = new Set<string>();

  constructor(private readonly source: PipelineSource) {}

  at(path: Path, message: string, which: 'key' | 'value' = 'value'): void {
    this.add(path, this.source.locate(path, which), message);
  }

  inString(path: Path, offset: number, text: string, message: string): void {
    this.add(path, this.source.locateInString(path, offset, text) ?? this.source.locate(path), message);
  }

  private add(path: Path, position: { line: number; col: number } | undefined, message: string): void {
    const problem: Problem = position
      ? { file: this.source.file, ...position, message }
      : { file: this.source.file, ...(path.length > 0 ? { path: formatPath(path) } : {}), message };
    const key = JSON.stringify(problem);
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.list.push(problem);
  }

  sorted(): Problem[] {
    return [...this.list].sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.col ?? 0) - (b.col ?? 0));
  }
}

function pointerToPath(pointer: string): Path {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((part) => (/^(0|[1-9][0-9]*)$/.test(part) ? Number(part) : part));
}

const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  null: 'empty',
};

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  return String(value);
}

function quoteList(words: readonly string[], joiner = ', '): string {
  return words.map((word) => `'${word}'`).join(joiner);
}

const NAME_RULE = "start with a letter or '_' and contain only letters, digits, '_' and '-'";

/** What the messages call the thing at `path`, e.g. `exec: 'expect-exit'` or `'timeout'`. */
function subject(path: Path, kinds: ReadonlyMap<string, StepDefinition>): string {
  if (path.length === 0) return 'the pipeline';
  if (path[0] === 'steps' && path.length === 2) return `step ${Number(path[1]) + 1}`;
  if (path[0] === 'steps' && path.length >= 3 && kinds.has(String(path[2]))) {
    return path.length === 3 ? `'${path[2]}'` : `${path[2]}: '${formatPath(path.slice(3))}'`;
  }
  if (path[0] === 'steps' && path.length >= 3) return `'${formatPath(path.slice(2))}'`;
  if (path[0] === 'vars' && path.length === 2) return `var '${path[1]}'`;
  return `'${formatPath(path)}'`;
}

/** Label for messages about a params object: 'exec' or 'wait-for.log'. */
function paramsLabel(path: Path): string {
  return formatPath(path.slice(2));
}

function translateSchemaErrors(errors: readonly ErrorObject[], registry: Registry, problems: Problems): void {
  const kinds = [...registry.kinds.keys()];
  const sortedKinds = [...kinds].sort();
  // Errors inside the branches of a failed oneOf/anyOf only repeat why no branch fit; the
  // oneOf error itself says it better.
  const failedAlternatives = errors.filter((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf').map((e) => `${e.schemaPath}/`);
  const relevant = errors.filter(
    (e) => !failedAlternatives.some((prefix) => e.schemaPath.startsWith(prefix)) && !e.schemaPath.includes('/propertyNames/'),
  );
  // Items whose only kind is misspelled: "unknown step kind 'exce'" says all there is to say.
  const itemsWithUnknownKind = new Set<number>();
  for (const error of relevant) {
    const path = pointerToPath(error.instancePath);
    if (error.keyword !== 'additionalProperties' || path[0] !== 'steps' || path.length !== 2 || !isRecord(error.data)) continue;
    const key = String((error.params as { additionalProperty: string }).additionalProperty);
    const hasKind = Object.keys(error.data).some((k) => registry.kinds.has(k));
    if (!hasKind && nearest(key, STEP_KEYS) === undefined) itemsWithUnknownKind.add(Number(path[1]));
  }
  // A missing key that an unknown key nearly spells ("rnu" for "run") is one mistake, not two.
  const misspelled = new Set<string>();
  for (const error of relevant) {
    if (error.keyword !== 'additionalProperties') continue;
    const allowed = Object.keys((error.parentSchema as { properties?: object }).properties ?? {});
    const guess = nearest(String((error.params as { additionalProperty: string }).additionalProperty), allowed);
    if (guess !== undefined) misspelled.add(`${error.instancePath}/${guess}`);
  }

  for (const error of relevant) {
    const path = pointerToPath(error.instancePath);
    const inStep = path[0] === 'steps' && path.length >= 2;
    const inParams = inStep && path.length >= 3 && registry.kinds.has(String(path[2]));
    // A param with references is checked after substitution, when its real value is known; a
    // timeout once vars are known (below).
    const substituted = inParams || (inStep && path.length === 3 && path[2] === 'timeout');
    if (substituted && typeof error.data === 'string' && scan(error.data).occurrences.length > 0) continue;

    switch (error.keyword) {
      case 'additionalProperties': {
        const key = String((error.params as { additionalProperty: string }).additionalProperty);
        const keyPath = [...path, key];
        if (path.length === 0) {
          problems.at(keyPath, `unknown key '${key}'${didYouMean(key, PIPELINE_KEYS)} (allowed: ${PIPELINE_KEYS.join(', ')})`, 'key');
        } else if (path[0] === 'steps' && path.length === 2) {
          if (!itemsWithUnknownKind.has(Number(path[1]))) {
            problems.at(keyPath, `unknown key '${key}' in step${didYouMean(key, [...STEP_KEYS, ...kinds])} (allowed besides the kind: ${STEP_KEYS.join(', ')})`, 'key');
          } else {
            problems.at(keyPath, `unknown step kind '${key}'${didYouMean(key, kinds)} (known kinds: ${sortedKinds.join(', ')})`, 'key');
          }
        } else if (inParams) {
          const allowed = Object.keys((error.parentSchema as { properties?: object }).properties ?? {});
          problems.at(keyPath, `${paramsLabel(path)}: unknown option '${key}'${didYouMean(key, allowed)} (allowed: ${allowed.join(', ')})`, 'key');
        } else {
          problems.at(keyPath, `unknown key '${key}'`, 'key');
        }
        break;
      }
      case 'required': {
        const key = (error.params as { missingProperty: string }).missingProperty;
        if (misspelled.has(`${error.instancePath}/${key}`)) break;
        if (inParams) problems.at(path, `${paramsLabel(path)}: missing required option '${key}'`);
        else problems.at(path, `missing required key '${key}'`);
        break;
      }
      case 'oneOf': {
        const passing = (error.params as { passingSchemas: number[] | null }).passingSchemas;
        const branches = (error.schema as Array<{ required?: string[] }>) ?? [];
        const choices = branches.map((branch) => branch.required?.[0]).filter((c): c is string => c !== undefined);
        const present = isRecord(error.data) ? choices.filter((choice) => choice in (error.data as object)) : [];
        if (path[0] === 'steps' && path.length === 2) {
          // A step that is not a mapping gets its own message (from 'type').
          if (!isRecord(error.data)) break;
          if (passing) problems.at(path, `step has more than one kind: ${quoteList(present, ' and ')}; use one per step`);
          else if (!itemsWithUnknownKind.has(Number(path[1]))) problems.at(path, `step has no kind; add one of: ${sortedKinds.join(', ')}`);
        } else if (choices.length === branches.length && choices.length > 0) {
          const label = inParams ? `${paramsLabel(path)}: ` : '';
          if (passing) problems.at(path, `${label}use only one of ${quoteList(present, ' and ')}`);
          else problems.at(path, `${label}needs one of ${quoteList(choices, ', ')}`);
        } else {
          problems.at(path, `${subject(path, registry.kinds)} must match exactly one of its allowed forms`);
        }
        break;
      }
      case 'type': {
        const expected = ([] as string[]).concat((error.params as { type: string | string[] }).type);
        const words = expected.map((type) => (type === 'boolean' && expected.length > 1 ? 'a boolean' : (TYPE_WORDS[type] ?? type)));
        const wanted = words.length > 1 ? `${words.slice(0, -1).join(', ')} or ${words.at(-1)}` : words[0];
        if (path[0] === 'steps' && path.length === 2) {
          problems.at(path, `each step must be a mapping like '- exec: { run: make }' (got ${describeValue(error.data)})`);
        } else {
          problems.at(path, `${subject(path, registry.kinds)} must be ${wanted} (got ${describeValue(error.data)})`);
        }
        break;
      }
      case 'const':
        problems.at(path, `${subject(path, registry.kinds)} must be ${JSON.stringify((error.params as { allowedValue: unknown }).allowedValue)} (got ${describeValue(error.data)})`);
        break;
      case 'enum': {
        const allowed = (error.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v));
        problems.at(path, `${subject(path, registry.kinds)} must be one of ${allowed.join(', ')} (got ${describeValue(error.data)})`);
        break;
      }
      case 'pattern': {
        const pattern = (error.params as { pattern: string }).pattern;
        // A patterned option's description names the accepted form ("host:port, e.g. ...").
        const form = (error.parentSchema as { description?: string }).description;
        const rule =
          pattern === DURATION_PATTERN
            ? 'must be a duration like 500ms, 30s, 2m or 1h'
            : pattern === NAME_PATTERN
              ? `must ${NAME_RULE}`
              : form
                ? `must be ${form}`
                : `must match /${pattern}/`;
        problems.at(path, `${subject(path, registry.kinds)} ${rule} (got ${describeValue(error.data)})`);
        break;
      }
      case 'propertyNames': {
        const name = (error.params as { propertyName: string }).propertyName;
        problems.at([...path, name], `invalid variable name '${name}'; names ${NAME_RULE}`, 'key');
        break;
      }
      case 'minItems':
        problems.at(path, path.length === 1 && path[0] === 'steps' ? "'steps' must have at least one step" : `${subject(path, registry.kinds)} ${error.message}`);
        break;
      case 'minLength':
        problems.at(path, `${subject(path, registry.kinds)} must not be empty`);
        break;
      default:
        problems.at(path, `${subject(path, registry.kinds)} ${error.message ?? 'is invalid'} (got ${describeValue(error.data)})`);
    }
  }
}

function walkStrings(value: unknown, path: Path, visit: (text: string, path: Path) => void): void {
  if (typeof value === 'string') visit(value, path);
  else if (Array.isArray(value)) value.forEach((item, i) => walkStrings(item, [...path, i], visit));
  else if (isRecord(value)) for (const [key, item] of Object.entries(value)) walkStrings(item, [...path, key], visit);
}

export function validatePipeline(source: PipelineSource, options: ValidateOptions): Plan {
  const registry = registryFor(options.steps);
  const problems = new Problems(source);
  problems.list.push(...source.problems);
  const data = source.data;

  // After a YAML syntax error there is no tree to check (a missing file has no tree either).
  if (data !== undefined || source.problems.length === 0) {
    if (!registry.pipeline(data)) translateSchemaErrors(registry.pipeline.errors ?? [], registry, problems);
  }

  const doc = isRecord(data) ? data : {};
  const yamlVars = isRecord(doc['vars']) ? doc['vars'] : {};
  const set = options.set ?? {};
  for (const name of Object.keys(set)) {
    if (!new RegExp(NAME_PATTERN).test(name)) problems.list.push({ message: `--set: invalid variable name '${name}'; names ${NAME_RULE}` });
  }
  const varNames = new Set([...Object.keys(yamlVars), ...Object.keys(set)]);
  const items = Array.isArray(doc['steps']) ? doc['steps'] : [];

  // Ids first, so that references can tell "later step" from "no such step".
  const idIndex = new Map<string, number>();
  items.forEach((item, index) => {
    if (!isRecord(item) || typeof item['id'] !== 'string') return;
    const id = item['id'];
    const first = idIndex.get(id);
    if (first === undefined) {
      idIndex.set(id, index);
      return;
    }
    const firstAt = source.locate(['steps', first, 'id']);
    problems.at(['steps', index, 'id'], `duplicate step id '${id}' (first used ${firstAt ? `at line ${firstAt.line}` : `by step ${first + 1}`})`);
  });

  /** scope: the index of the step the text belongs to, or what else it belongs to. */
  const checkReferences = (text: string, path: Path, scope: number | 'vars' | 'timeout'): void => {
    const { occurrences, faults } = scan(text);
    for (const fault of faults) problems.inString(path, fault.offset, fault.text, fault.message);
    for (const { ref, text: written, offset } of occurrences) {
      const message = referenceProblem(ref, written, scope);
      if (message) problems.inString(path, offset, written, message);
    }
  };

  const referenceProblem = (ref: Reference, written: string, scope: number | 'vars' | 'timeout'): string | undefined => {
    if (ref.type === 'env') {
      return options.env[ref.name] === undefined ? `environment variable '${ref.name}' is not set (in '${written}')` : undefined;
    }
    if (ref.type === 'var') {
      return varNames.has(ref.name)
        ? undefined
        : `undefined variable '${ref.name}' in '${written}'${didYouMean(ref.name, [...varNames])} (define it under 'vars:' or pass --set ${ref.name}=VALUE)`;
    }
    if (scope === 'vars') return `vars cannot refer to step outputs ('${written}')`;
    if (scope === 'timeout') return `'timeout' cannot use step outputs ('${written}'); it is needed before the step starts`;
    const stepIndex = scope;
    const target = idIndex.get(ref.id);
    if (target === undefined || target >= stepIndex) {
      if (target === stepIndex) return `'${written}' refers to this step itself; only earlier steps' outputs can be used`;
      if (target !== undefined) return `'${written}' refers to step '${ref.id}', which runs later`;
      const earlier = [...idIndex].filter(([, index]) => index < stepIndex).map(([id]) => id);
      const known = earlier.length > 0 ? `ids of earlier steps: ${earlier.join(', ')}` : 'no earlier step has an id';
      return `unknown step id '${ref.id}' in '${written}'${didYouMean(ref.id, earlier)} (${known})`;
    }
    const item = items[target] as Record<string, unknown>;
    const definition = Object.keys(item).map((key) => registry.kinds.get(key)).find((d) => d !== undefined);
    const output = ref.path[0]!;
    if (!definition?.outputs || definition.outputs.includes(output)) return undefined;
    const list = definition.outputs.length > 0 ? `outputs: ${definition.outputs.join(', ')}` : 'it has no outputs';
    return `step '${ref.id}' (${definition.kind}) has no output '${output}'${didYouMean(output, definition.outputs)} (${list})`;
  };

  for (const [name, value] of Object.entries(yamlVars)) {
    if (typeof value === 'string') checkReferences(value, ['vars', name], 'vars');
  }
  const vars = resolveVars(yamlVars, set, options.env, problems);

  // A timeout is needed before the step starts, so it may use vars and env but no step outputs.
  const timeoutOf = (written: string, path: Path): string | undefined => {
    const { occurrences } = scan(written);
    if (occurrences.length === 0) return written;
    const known = problems.list.length;
    checkReferences(written, path, 'timeout');
    if (problems.list.length > known) return undefined;
    const text = stringify(interpolate(written, (ref) => (ref.type === 'var' ? vars[ref.name] : ref.type === 'env' ? options.env[ref.name] : '')));
    if (parseDuration(text) !== undefined) return text;
    problems.at(path, `'timeout' must be a duration like 500ms, 30s, 2m or 1h (got ${JSON.stringify(text)} from ${JSON.stringify(written)})`);
    return undefined;
  };

  const planned: PlanStep[] = [];
  items.forEach((item, index) => {
    if (!isRecord(item)) return;
    const stepKinds = Object.keys(item).filter((key) => registry.kinds.has(key));
    const kind = stepKinds[0];
    const path: Path = ['steps', index];
    let condition: Expression | undefined;
    if (typeof item['if'] === 'string') {
      checkReferences(item['if'], [...path, 'if'], index);
      try {
        condition = parseExpression(item['if']);
      } catch (err) {
        if (!(err instanceof ExpressionSyntaxError)) throw err;
        problems.at([...path, 'if'], `'if': ${err.message}`);
      }
    }
    if (stepKinds.length !== 1 || kind === undefined) return;
    const definition = registry.kinds.get(kind)!;
    const params = isRecord(item[kind]) ? (item[kind] as Record<string, unknown>) : {};
    walkStrings(params, [...path, kind], (text, at) => checkReferences(text, at, index));
    for (const key of definition.expressions ?? []) {
      if (typeof params[key] !== 'string') continue;
      try {
        parseExpression(params[key]);
      } catch (err) {
        if (!(err instanceof ExpressionSyntaxError)) throw err;
        problems.at([...path, kind, key], `${kind}: '${key}': ${err.message}`);
      }
    }
    const timeoutText = typeof item['timeout'] === 'string' ? timeoutOf(item['timeout'], [...path, 'timeout']) : undefined;
    planned.push({
      index,
      id: typeof item['id'] === 'string' ? item['id'] : undefined,
      kind,
      definition,
      params,
      title: '',
      preview: params,
      timeoutMs: timeoutText === undefined ? undefined : parseDuration(timeoutText),
      timeoutText,
      condition,
      continueOnError: item['continue-on-error'] === true,
      path,
    });
  });

  if (problems.list.length > 0) throw new PipelineError(problems.sorted());

  // Titles show vars and env substituted; step outputs are not known yet.
  const preview = (ref: Reference, text: string): unknown =>
    ref.type === 'var' ? vars[ref.name] : ref.type === 'env' ? options.env[ref.name] : text;
  for (const step of planned) {
    step.preview = interpolateTree(step.params, preview, step.definition.expressions) as Record<string, unknown>;
    step.title = stepTitle(step, step.preview);
  }

  return {
    name: typeof doc['name'] === 'string' ? doc['name'] : 'pipeline',
    file: source.file,
    cwd: options.cwd ?? (source.file ? dirname(resolve(source.file)) : process.cwd()),
    vars,
    env: options.env,
    steps: planned,
    source,
    registry,
  };
}

/** "exec[build]: make", from the step's own title function. */
export function stepTitle(step: PlanStep, params: Record<string, unknown>): string {
  const detail = step.definition.title?.(params).replace(/\s+/g, ' ').trim() ?? '';
  const short = detail.length > 60 ? `${detail.slice(0, 57)}...` : detail;
  return `${step.kind}${step.id ? `[${step.id}]` : ''}${short ? `: ${short}` : ''}`;
}

/** Values of vars: `--set` wins; YAML values may refer to env and to other vars. */
function resolveVars(
  yamlVars: Record<string, unknown>,
  set: Record<string, string>,
  env: Record<string, string | undefined>,
  problems: Problems,
): Record<string, unknown> {
  const resolved: Record<string, unknown> = { ...set };
  const resolving: string[] = [];
  const value = (name: string): unknown => {
    if (name in resolved) return resolved[name];
    const raw = yamlVars[name];
    if (raw === undefined) return undefined;
    if (typeof raw !== 'string') return (resolved[name] = raw);
    if (resolving.includes(name)) {
      const cycle = [...resolving.slice(resolving.indexOf(name)), name].join(' -> ');
      problems.at(['vars', name], `variable '${name}' refers to itself (${cycle})`);
      return (resolved[name] = '');
    }
    resolving.push(name);
    const result = interpolate(raw, (ref) => (ref.type === 'env' ? env[ref.name] : ref.type === 'var' ? value(ref.name) : undefined));
    resolving.pop();
    return (resolved[name] = result);
  };
  for (const name of Object.keys(yamlVars)) value(name);
  return resolved;
}
