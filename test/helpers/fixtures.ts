// Running the C fixtures of test/fixtures (protocol in test/fixtures/fixture.h): spawn, wait for
// "ready", follow the log, and kill and reap at teardown.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tap from 'tap';
import { fixture } from './paths.js';
import { killAndReap, trackChildProcess, type ExitStatus } from './reap.js';
import type { Teardown } from './tmpdir.js';

export interface StartOptions {
  /** Whose teardown kills the fixture and removes its directory; default the root tap object. */
  t?: Teardown;
  /** Log file path; default <dir>/<name>.log. */
  log?: string;
  /** Milliseconds to wait for "ready"; default 5000. */
  readyTimeoutMs?: number;
}

export interface FixtureProcess {
  name: string;
  pid: number;
  /** The log file. */
  log: string;
  /** A temporary directory for this fixture, removed at teardown (files, filemap use it as DIR). */
  dir: string;
  /** The "ready ..." line, and its key=value words (pid, addresses, fd numbers...). */
  ready: string;
  readyInfo: Record<string, string>;
  /** The original child; its exit status (the restored incarnation of the PID is not it). */
  child: ChildProcess;
  exited: Promise<ExitStatus>;
  /** Every complete line of the log so far. */
  lines(): string[];
  /** The number of the latest "tick N ok" line; 0 before the first. */
  lastTick(): number;
  /**
   * Resolves with the first line at index >= fromLine matching `re`; rejects on timeout or when
   * a "FAIL" line appears.
   */
  waitForLine(re: RegExp, timeoutMs?: number, fromLine?: number): Promise<string>;
  /** Waits until `k` ticks after the current lastTick() have been logged; resolves with it. */
  waitTicks(k: number, timeoutMs?: number): Promise<number>;
  /** SIGKILLs the original child and waits until Node has reaped it (its PID is then free). */
  kill(): Promise<ExitStatus>;
}

const POLL_MS = 10;
const TICK_LINE = /^tick (\d+) ok/;

class LogFollower {
  private offset = 0;
  private partial = '';
  readonly all: string[] = [];
  private tick = 0;
  /** The first "FAIL ..." line: the fixture exits right after it. */
  failed: string | undefined;

  constructor(private readonly file: string) {}

  /** Reads what was appended since the last call. */
  refresh(): string[] {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return this.all;
      throw err;
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size > this.offset) {
        const buf = Buffer.alloc(size - this.offset);
        const n = fs.readSync(fd, buf, 0, buf.length, this.offset);
        this.offset += n;
        const parts = (this.partial + buf.toString('utf8', 0, n)).split('\n');
        this.partial = parts.pop()!;
        for (const line of parts) {
          this.all.push(line);
          const m = TICK_LINE.exec(line);
          if (m) this.tick = Number(m[1]);
          if (line.startsWith('FAIL')) this.failed ??= line;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    return this.all;
  }

  lastTick(): number {
    this.refresh();
    return this.tick;
  }
}

function describe(pid: number, lines: string[]): string {
  let state = 'gone';
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    state = `state ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]}`;
  } catch {
    // no /proc entry: the process is gone
  }
  return `pid ${pid} (${state}); last lines:\n  ${lines.slice(-5).join('\n  ')}`;
}

async function waitFor(
  follower: LogFollower,
  pid: number,
  re: RegExp,
  timeoutMs: number,
  fromLine: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = follower.refresh();
    for (let i = fromLine; i < lines.length; i++) if (re.test(lines[i]!)) return lines[i]!;
    if (follower.failed !== undefined) throw new Error(`fixture failed: ${follower.failed}\n${describe(pid, lines)}`);
    if (Date.now() >= deadline) throw new Error(`no line matching ${re} within ${timeoutMs} ms: ${describe(pid, lines)}`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * Starts test/fixtures/bin/<name> LOG ...args in its own session with stdio on /dev/null and
 * waits for its "ready" line. `args` may be a function of the fixture's temporary directory,
 * e.g. `(dir) => [dir]` for files and filemap. At teardown the fixture is SIGKILLed and reaped:
 * the original child through Node, or, once that has exited, a restored process with the same
 * PID running the same binary.
 */
export async function startFixture(
  name: string,
  args: string[] | ((dir: string) => string[]) = [],
  opts: StartOptions = {},
): Promise<FixtureProcess> {
  const t = opts.t ?? tap;
  const bin = fixture(name);
  if (!fs.existsSync(bin)) throw new Error(`${bin} is not built: run node dist/test/setup.js`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `ckpt-${name}-`));
  const log = opts.log ?? path.join(dir, `${name}.log`);
  const argv = [log, ...(typeof args === 'function' ? args(dir) : args)];

  const child = spawn(bin, argv, { detached: true, stdio: 'ignore', cwd: dir });
  if (child.pid === undefined) {
    const err = await new Promise<Error>((resolve) => child.once('error', resolve));
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`spawn ${bin}: ${err.message}`);
  }
  const pid = child.pid;
  const exited = trackChildProcess(child);

  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    } else if (runsBinary(pid, bin)) {
      await killAndReap(pid);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const follower = new LogFollower(log);
  const timeout = opts.readyTimeoutMs ?? 5000;
  const earlyExit = exited.then((st) => {
    throw new Error(`${name} exited before ready (${JSON.stringify(st)}): ${describe(pid, follower.refresh())}`);
  });
  const ready = await Promise.race([waitFor(follower, pid, /^ready /, timeout, 0), earlyExit]);

  const readyInfo: Record<string, string> = {};
  for (const word of ready.split(' ').slice(1)) {
    const eq = word.indexOf('=');
    if (eq > 0) readyInfo[word.slice(0, eq)] = word.slice(eq + 1);
  }

  return {
    name,
    pid,
    log,
    dir,
    ready,
    readyInfo,
    child,
    exited,
    lines: () => [...follower.refresh()],
    lastTick: () => follower.lastTick(),
    waitForLine: (re, timeoutMs = 5000, fromLine = 0) => waitFor(follower, pid, re, timeoutMs, fromLine),
    async waitTicks(k, timeoutMs = 5000 + k * 100) {
      const target = follower.lastTick() + k;
      const deadline = Date.now() + timeoutMs;
      while (follower.lastTick() < target) {
        const lines = follower.all;
        if (follower.failed !== undefined) throw new Error(`fixture failed: ${follower.failed}\n${describe(pid, lines)}`);
        if (Date.now() >= deadline) throw new Error(`tick ${target} not reached within ${timeoutMs} ms: ${describe(pid, lines)}`);
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      }
      return follower.lastTick();
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
}

function runsBinary(pid: number, bin: string): boolean {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`) === bin;
  } catch {
    return false;
  }
}
