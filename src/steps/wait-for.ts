// wait-for: poll until a TCP port accepts connections, a file exists, a line of a log file
// matches, or a process exits (any process: /proc is polled, not waitpid).
import { open } from 'node:fs/promises';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { durationSchema, parseDuration } from '../runner/duration.js';
import { StepError } from '../runner/errors.js';
import type { StepDefinition } from '../runner/types.js';
import { ProcError, readStat } from '../sys/proc.js';

export interface WaitForParams {
  port?: string;
  file?: string;
  log?: { path: string; pattern: string };
  exit?: number;
  timeout: string;
}

const POLL_MS = 50;
const CONNECT_TIMEOUT_MS = 1000;

const waitFor: StepDefinition<WaitForParams> = {
  kind: 'wait-for',
  summary: 'Wait until a port opens, a file appears, a log line matches or a process exits.',
  schema: {
    type: 'object',
    properties: {
      port: {
        type: 'string',
        pattern: '^(\\[[0-9a-fA-F:.]+\\]|[^\\s:\\[\\]]+):[0-9]{1,5}$',
        description: 'host:port, e.g. "localhost:8080" or "[::1]:8080"',
      },
      file: { type: 'string', minLength: 1, description: "A path that must exist; relative to the pipeline file's directory." },
      log: {
        type: 'object',
        properties: {
          path: { type: 'string', minLength: 1, description: 'The log file.' },
          pattern: { type: 'string', minLength: 1, description: 'Regular expression (JavaScript syntax) matched against each line.' },
        },
        required: ['path', 'pattern'],
        additionalProperties: false,
      },
      exit: { type: 'integer', minimum: 1, description: 'PID of a process to wait for; need not be a child of ckpt.' },
      timeout: { ...durationSchema, description: 'Give up after this long, e.g. "10s".' },
    },
    required: ['timeout'],
    additionalProperties: false,
    oneOf: [{ required: ['port'] }, { required: ['file'] }, { required: ['log'] }, { required: ['exit'] }],
  },
  outputs: ['elapsed-ms', 'line'],
  title: (params) => describe(params),

  async run(ctx, params) {
    const timeoutMs = parseDuration(params.timeout)!;
    const check = condition(params, ctx.cwd);
    const started = performance.now();
    ctx.log(`waiting for ${describe(params)} (timeout ${params.timeout})`);
    for (;;) {
      const found = await check();
      const elapsed = Math.round(performance.now() - started);
      if (found !== undefined) return { 'elapsed-ms': elapsed, ...found };
      if (elapsed >= timeoutMs) throw new StepError(`${failure(params)} within ${params.timeout}`);
      await delay(Math.min(POLL_MS, timeoutMs - elapsed), undefined, { signal: ctx.signal });
    }
  },
};

function describe(params: WaitForParams): string {
  if (params.port !== undefined) return `port ${params.port}`;
  if (params.file !== undefined) return `file ${params.file}`;
  if (params.log !== undefined) return `/${params.log.pattern}/ in ${params.log.path}`;
  return `exit of pid ${params.exit}`;
}

function failure(params: WaitForParams): string {
  if (params.port !== undefined) return `port ${params.port} did not open`;
  if (params.file !== undefined) return `${params.file} did not appear`;
  if (params.log !== undefined) return `no line of ${params.log.path} matched /${params.log.pattern}/`;
  return `process ${params.exit} did not exit`;
}

/** A check that returns extra outputs once the condition holds, else undefined. */
function condition(params: WaitForParams, cwd: string): () => Promise<Record<string, unknown> | undefined> {
  if (params.port !== undefined) {
    const split = params.port.lastIndexOf(':');
    const host = params.port.slice(0, split).replace(/^\[(.*)\]$/, '$1');
    const port = Number(params.port.slice(split + 1));
    if (port < 1 || port > 65535) throw new StepError(`invalid port in "${params.port}": must be 1-65535`);
    return async () => ((await accepts(host, port)) ? {} : undefined);
  }
  if (params.file !== undefined) {
    const path = resolve(cwd, params.file);
    return async () => {
      const handle = await open(path, 'r').catch(() => undefined);
      await handle?.close();
      return handle ? {} : undefined;
    };
  }
  if (params.log !== undefined) return logMatcher(resolve(cwd, params.log.path), params.log.pattern);
  const pid = params.exit!;
  return async () => (running(pid) ? undefined : {});
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port, timeout: CONNECT_TIMEOUT_MS });
    const finish = (ok: boolean) => () => {
      socket.destroy();
      done(ok);
    };
    socket.once('connect', finish(true));
    socket.once('error', finish(false));
    socket.once('timeout', finish(false));
  });
}

/** False once the process is gone or a zombie (dead, only not yet reaped by its parent). */
function running(pid: number): boolean {
  try {
    const state = readStat(pid).state;
    return state !== 'Z' && state !== 'X';
  } catch (err) {
    if (err instanceof ProcError && (err.code === 'ENOENT' || err.code === 'ESRCH')) return false;
    throw err;
  }
}

/** Reads only what was appended since the last look; starts over if the file was truncated. */
function logMatcher(path: string, pattern: string): () => Promise<Record<string, unknown> | undefined> {
  let regex: RegExp;
  try {
    regex = new RegExp(pattern);
  } catch (err) {
    throw new StepError(`invalid pattern /${pattern}/: ${(err as Error).message}`);
  }
  let offset = 0;
  let partial = '';
  return async () => {
    const handle = await open(path, 'r').catch(() => undefined);
    if (!handle) return undefined;
    try {
      const { size } = await handle.stat();
      if (size < offset) {
        offset = 0;
        partial = '';
      }
      if (size > offset) {
        const buffer = Buffer.alloc(size - offset);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        offset += bytesRead;
        partial += buffer.subarray(0, bytesRead).toString('utf8');
      }
    } finally {
      await handle.close();
    }
    const lines = partial.split('\n');
    // The last piece may be a line still being written: test it, but keep it for next time.
    const match = lines.find((line) => regex.test(line));
    partial = lines.at(-1)!;
    return match === undefined ? undefined : { line: match };
  };
}

export default waitFor;
