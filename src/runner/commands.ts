// Plain commands: each is a one-step pipeline. An entry of COMMANDS maps criu-style flags to
// the params of one step kind and is run by the same runner as `ckpt run`. To add a command,
// add an entry here; `ckpt --help` and `ckpt NAME --help` are generated from it.
import type { ImageSummary } from '../state/show.js';
import { formatImage } from '../state/show.js';
import type { ProbeResult } from '../sys/probes.js';
import { UsageError } from './errors.js';
import { didYouMean } from './suggest.js';

export type FlagType = 'string' | 'integer' | 'number' | 'boolean';

export interface FlagSpec {
  /** Long name without dashes: 'leave-running' for --leave-running. */
  long: string;
  /** One letter: 't' for -t. */
  short?: string;
  /** The step param it sets; dots reach into nested options ('log.path'). Global flags have none. */
  param?: string;
  type: FlagType;
  /** Placeholder for its value in help: 'PID', 'DIR'. */
  value?: string;
  description: string;
  required?: boolean;
  /** May be given more than once; its value is then a list. */
  multiple?: boolean;
}

export interface PositionalSpec {
  /** Placeholder in help: 'DIR'. */
  name: string;
  param: string;
  type: FlagType;
  description: string;
  required?: boolean;
}

export interface CommandDefinition {
  name: string;
  summary: string;
  /** The step kind it runs. */
  step: string;
  flags: FlagSpec[];
  positionals?: PositionalSpec[];
  /**
   * For commands whose result is their output (show, check): the text to write to stdout,
   * given the step's outputs. The task list then goes to stderr, and --json is the command's
   * own JSON rather than run events.
   */
  print?(outputs: Record<string, unknown>, options: { json: boolean }): string;
  /** The exit code after a successful run, from the step's outputs (restore: the process's status). */
  exitCode?(outputs: Record<string, unknown>): number;
}

/** Flags every command takes. */
export const GLOBAL_FLAGS: FlagSpec[] = [
  { long: 'json', type: 'boolean', description: 'one JSON object per line on stdout' },
  { long: 'debug', type: 'boolean', description: 'show stack traces of errors' },
  { long: 'help', short: 'h', type: 'boolean', description: 'show this help' },
];

export const COMMANDS: CommandDefinition[] = [
  {
    name: 'dump',
    summary: 'Checkpoint a running process into an image directory',
    step: 'dump',
    flags: [
      { long: 'tree', short: 't', param: 'pid', type: 'integer', value: 'PID', description: 'the process to dump', required: true },
      { long: 'images-dir', short: 'D', param: 'dir', type: 'string', value: 'DIR', description: 'image directory (created 0700)', required: true },
      { long: 'leave-running', short: 'R', param: 'leave-running', type: 'boolean', description: 'let the process continue after the dump (default: end it)' },
      { long: 'freeze-method', param: 'method', type: 'string', value: 'ptrace|cgroup', description: 'how to freeze it (default ptrace)' },
      { long: 'shell-job', short: 'j', param: 'shell-job', type: 'boolean', description: 'started from a shell: record its terminal, outside the tree' },
    ],
  },
  {
    name: 'restore',
    summary: 'Restore a process from an image directory with its original PID',
    step: 'restore',
    flags: [
      { long: 'images-dir', short: 'D', param: 'dir', type: 'string', value: 'DIR', description: 'image directory written by dump', required: true },
      { long: 'restore-detached', short: 'd', param: 'detach', type: 'boolean', description: 'return once it runs (default: wait and exit with its status)' },
      { long: 'pidfile', param: 'pidfile', type: 'string', value: 'FILE', description: 'write the restored PID here' },
      { long: 'pid-ns', param: 'pid-ns', type: 'boolean', description: 'restore into a new PID namespace where its PIDs are free (implies -d)' },
      { long: 'shell-job', short: 'j', param: 'shell-job', type: 'boolean', description: 'a shell job: give it this terminal, keep it in this session' },
    ],
    exitCode: (outputs) => (typeof outputs['exit-code'] === 'number' ? outputs['exit-code'] : 0),
  },
  {
    name: 'show',
    summary: 'Describe an image (refusing a damaged one)',
    step: 'show',
    flags: [],
    positionals: [{ name: 'DIR', param: 'dir', type: 'string', description: 'image directory', required: true }],
    print: (outputs, { json }) =>
      json ? `${JSON.stringify(outputs.image, null, 2)}\n` : formatImage(outputs.image as ImageSummary),
  },
  {
    name: 'check',
    summary: 'Probe the kernel features ckpt uses; exit 0 when dump and restore can work here',
    step: 'check',
    flags: [],
    print: (outputs, { json }) => {
      const features = outputs.features as ProbeResult[];
      if (json) return `${JSON.stringify({ usable: outputs.usable, features })}\n`;
      const width = Math.max(...features.map((f) => f.feature.length)) + 2;
      const rows = features.map((f) =>
        `${f.ok ? 'ok     ' : f.required ? 'MISSING' : 'absent '} ${f.feature.padEnd(width)}${f.usedFor}${f.detail && !f.ok ? ` (${f.detail})` : ''}`);
      return `${rows.join('\n')}\n${outputs.usable ? 'dump and restore can work here' : 'dump and restore cannot work here'}\n`;
    },
  },
  {
    name: 'wait-for',
    summary: 'Wait until a port opens, a file appears, a log line matches or a process exits',
    step: 'wait-for',
    flags: [
      { long: 'exit', param: 'exit', type: 'integer', value: 'PID', description: 'wait until this process exits (any process, not only children)' },
      { long: 'port', param: 'port', type: 'string', value: 'HOST:PORT', description: 'wait until it accepts TCP connections' },
      { long: 'file', param: 'file', type: 'string', value: 'PATH', description: 'wait until it exists' },
      { long: 'log', param: 'log.path', type: 'string', value: 'PATH', description: 'wait until a line of this file matches --pattern' },
      { long: 'pattern', param: 'log.pattern', type: 'string', value: 'REGEX', description: 'regular expression for --log' },
      { long: 'timeout', short: 't', param: 'timeout', type: 'string', value: 'DURATION', description: 'give up after this long, e.g. 30s', required: true },
    ],
  },
];

export interface ParsedArgs {
  /** By long name. */
  flags: Map<string, unknown>;
  positionals: string[];
}

function flagLabel(flag: FlagSpec): string {
  return flag.short ? `-${flag.short}/--${flag.long}` : `--${flag.long}`;
}

function convert(flag: { type: FlagType }, raw: string, label: string, command: string): unknown {
  if (flag.type === 'integer') {
    if (!/^-?[0-9]+$/.test(raw)) throw new UsageError(`${label} needs an integer (got '${raw}')`, command);
    return Number(raw);
  }
  if (flag.type === 'number') {
    if (raw.trim() === '' || !Number.isFinite(Number(raw))) throw new UsageError(`${label} needs a number (got '${raw}')`, command);
    return Number(raw);
  }
  return raw;
}

/** Parses `-t 42 --leave-running -D dir --pidfile=f`. `command` names the --help to point at. */
export function parseArgs(argv: readonly string[], flags: readonly FlagSpec[], command: string): ParsedArgs {
  const result: ParsedArgs = { flags: new Map(), positionals: [] };
  const set = (flag: FlagSpec, value: unknown): void => {
    if (flag.multiple) result.flags.set(flag.long, [...((result.flags.get(flag.long) as unknown[]) ?? []), value]);
    else result.flags.set(flag.long, value);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      result.positionals.push(...argv.slice(i + 1));
      break;
    }
    let flag: FlagSpec | undefined;
    let attached: string | undefined;
    if (arg.startsWith('--')) {
      const [name, ...value] = arg.slice(2).split('=');
      flag = flags.find((f) => f.long === name);
      if (!flag) throw new UsageError(`unknown option '--${name}'${didYouMean(`--${name}`, flags.map((f) => `--${f.long}`))}`, command);
      attached = value.length > 0 ? value.join('=') : undefined;
    } else if (arg.startsWith('-') && arg.length > 1 && !/^-[0-9]/.test(arg)) {
      flag = flags.find((f) => f.short === arg[1]);
      if (!flag || (flag.type === 'boolean' && arg.length > 2)) throw new UsageError(`unknown option '${arg}'`, command);
      attached = arg.length > 2 ? arg.slice(2) : undefined;
    } else {
      result.positionals.push(arg);
      continue;
    }
    if (flag.type === 'boolean') {
      if (attached !== undefined) throw new UsageError(`option --${flag.long} takes no value`, command);
      set(flag, true);
      continue;
    }
    const raw = attached ?? argv[++i];
    if (raw === undefined) throw new UsageError(`option ${flagLabel(flag)} needs a value${flag.value ? ` (${flag.value})` : ''}`, command);
    set(flag, convert(flag, raw, `option ${flagLabel(flag)}`, command));
  }
  return result;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
  node[keys.at(-1)!] = value;
}

/** The step params a command line asks for. */
export function commandParams(command: CommandDefinition, parsed: ParsedArgs): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const flag of command.flags) {
    const value = parsed.flags.get(flag.long);
    if (value === undefined) {
      if (flag.required) throw new UsageError(`missing required option ${flagLabel(flag)}`, command.name);
      continue;
    }
    if (flag.param) setPath(params, flag.param, value);
  }
  const positionals = command.positionals ?? [];
  if (parsed.positionals.length > positionals.length) {
    throw new UsageError(`unexpected argument '${parsed.positionals[positionals.length]}'`, command.name);
  }
  positionals.forEach((spec, i) => {
    const raw = parsed.positionals[i];
    if (raw === undefined) {
      if (spec.required) throw new UsageError(`missing ${spec.name}`, command.name);
      return;
    }
    setPath(params, spec.param, convert(spec, raw, spec.name, command.name));
  });
  return params;
}

export function flagsHelp(flags: readonly FlagSpec[]): string[] {
  const rows = flags.map((flag) => {
    const name = `${flag.short ? `-${flag.short}, ` : '    '}--${flag.long}${flag.value ? ` ${flag.value}` : ''}`;
    const notes = [flag.required ? 'required' : undefined, flag.multiple ? 'repeatable' : undefined].filter(Boolean);
    return [name, `${flag.description}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}`] as const;
  });
  const width = Math.max(...rows.map(([name]) => name.length)) + 2;
  return rows.map(([name, text]) => `  ${name.padEnd(width)}${text}`);
}

export function commandHelp(command: CommandDefinition): string {
  const positionals = (command.positionals ?? []).map((p) => (p.required ? ` ${p.name}` : ` [${p.name}]`)).join('');
  const lines = [
    `Usage: ckpt ${command.name} [options]${positionals}`,
    '',
    `${command.summary}.`,
    `Runs the '${command.step}' step as a one-step pipeline.`,
  ];
  if (command.positionals?.length) {
    lines.push('', 'Arguments:');
    const width = Math.max(...command.positionals.map((p) => p.name.length)) + 2;
    for (const p of command.positionals) lines.push(`  ${p.name.padEnd(width)}${p.description}`);
  }
  lines.push('', 'Options:', ...flagsHelp([...command.flags, ...GLOBAL_FLAGS]));
  return `${lines.join('\n')}\n`;
}
