// `${...}` references inside pipeline strings:
//   ${name}              a var from `vars:` or `--set name=value`
//   ${env.NAME}          an environment variable
//   ${steps.ID.OUTPUT}   an output of an earlier step (deeper keys with more dots)
// `$${` writes a literal `${`.

export type Reference =
  | { type: 'var'; name: string }
  | { type: 'env'; name: string }
  | { type: 'step'; id: string; path: string[] };

export interface Occurrence {
  /** The reference as written, e.g. "${steps.a.pid}". */
  text: string;
  /** Index of its `$` in the string. */
  offset: number;
  ref: Reference;
}

export interface TemplateFault {
  text: string;
  offset: number;
  message: string;
}

const NAME = '[A-Za-z_][A-Za-z0-9_-]*';
export const NAME_PATTERN = `^${NAME}$`;
const VAR_RE = new RegExp(NAME_PATTERN);
const ENV_RE = /^env\.([A-Za-z_][A-Za-z0-9_]*)$/;
const STEP_RE = new RegExp(`^steps\\.(${NAME})((?:\\.${NAME})+)$`);

function parseReference(inner: string): Reference | undefined {
  const env = ENV_RE.exec(inner);
  if (env) return { type: 'env', name: env[1]! };
  const step = STEP_RE.exec(inner);
  if (step) return { type: 'step', id: step[1]!, path: step[2]!.slice(1).split('.') };
  if (VAR_RE.test(inner) && inner !== 'env' && inner !== 'steps') return { type: 'var', name: inner };
  return undefined;
}

/** Every reference in a string, and every malformed one. */
export function scan(value: string): { occurrences: Occurrence[]; faults: TemplateFault[] } {
  const occurrences: Occurrence[] = [];
  const faults: TemplateFault[] = [];
  let i = 0;
  while (i < value.length) {
    if (value.startsWith('$${', i)) {
      i += 3;
      continue;
    }
    if (!value.startsWith('${', i)) {
      i++;
      continue;
    }
    const end = value.indexOf('}', i + 2);
    if (end < 0) {
      faults.push({ text: value.slice(i), offset: i, message: `unterminated '\${' in "${value}"` });
      break;
    }
    const text = value.slice(i, end + 1);
    const ref = parseReference(value.slice(i + 2, end));
    if (ref) occurrences.push({ text, offset: i, ref });
    else {
      faults.push({
        text,
        offset: i,
        message: `invalid reference '${text}'; write \${name}, \${env.NAME} or \${steps.ID.OUTPUT}`,
      });
    }
    i = end + 1;
  }
  return { occurrences, faults };
}

/** How a referenced value reads inside a larger string. */
export function stringify(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value, (_key, v) => (typeof v === 'bigint' ? String(v) : v));
  return String(value);
}

/**
 * Substitutes references using `lookup`. A string that is exactly one reference takes the
 * referenced value as is (a pid stays a number); otherwise the result is a string.
 */
export function interpolate(value: string, lookup: (ref: Reference, text: string) => unknown): unknown {
  const { occurrences } = scan(value);
  const only = occurrences[0];
  if (occurrences.length === 1 && only && only.offset === 0 && only.text.length === value.length) {
    return lookup(only.ref, only.text);
  }
  let result = '';
  let i = 0;
  for (const occurrence of occurrences) {
    result += value.slice(i, occurrence.offset).replaceAll('$${', '${');
    result += stringify(lookup(occurrence.ref, occurrence.text));
    i = occurrence.offset + occurrence.text.length;
  }
  return result + value.slice(i).replaceAll('$${', '${');
}

/** interpolate() over every string in a params tree, except the top-level keys in `keep`. */
export function interpolateTree(
  value: unknown,
  lookup: (ref: Reference, text: string) => unknown,
  keep: readonly string[] = [],
): unknown {
  if (typeof value === 'string') return interpolate(value, lookup);
  if (Array.isArray(value)) return value.map((item) => interpolateTree(item, lookup));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, keep.includes(key) ? item : interpolateTree(item, lookup)]),
    );
  }
  return value;
}
