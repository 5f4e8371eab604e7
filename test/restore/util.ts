// Shared by the restore tests: the CLI run as users run it, dump/restore round trips of a
// fixture, and programs other than the C fixtures (python3) run with the same cleanup rules.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { readStat } from '../../src/sys/proc.js';
import { killAndReap, packageRoot, reapPid, trackChildProcess, type ExitStatus, type FixtureProcess, type Teardown } from '../helpers/index.js';

export const bin = path.join(packageRoot, 'bin', 'ckpt.js');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time of the whole command, in ms. */
  ms: number;
}

/** The environment a user's shell would pass: without the loaders tap sets for its own processes. */
function userEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS' && !k.startsWith('_TAPJS_')));
}

/** How long one ckpt command may take before it is SIGKILLed (a hung ckpt may not heed SIGTERM). */
export const CKPT_TIMEOUT_MS = 60_000;

/**
 * Runs `node bin/ckpt.js ...args` to its end, or SIGKILLs it after CKPT_TIMEOUT_MS (then
 * `signal` is SIGKILL). `onSpawn` sees the ckpt process while it runs.
 */
export function ckpt(args: string[], onSpawn?: (child: ChildProcess) => void): Promise<CliRun> {
  const start = performance.now();
  return new Promise((resolve) => {
    const options = { cwd: packageRoot, env: userEnv(), maxBuffer: 16 << 20, timeout: CKPT_TIMEOUT_MS, killSignal: 'SIGKILL' as const };
    const child = execFile(process.execPath, [bin, ...args], options, (err, stdout, stderr) => {
      const e = err as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
      resolve({
        code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        signal: e?.signal ?? null,
        stdout,
        stderr,
        ms: performance.now() - start,
      });
    });
    onSpawn?.(child);
  });
}

const show = (r: CliRun) =>
  `${r.signal === 'SIGKILL' ? `killed after ${CKPT_TIMEOUT_MS} ms` : `exit ${r.code ?? r.signal}`}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

/** `ckpt dump -t PID -D DIR`; throws with ckpt's output unless it succeeds. */
export async function dump(pid: number, dir: string, extra: string[] = []): Promise<CliRun> {
  const r = await ckpt(['dump', '-t', String(pid), '-D', dir, ...extra]);
  if (r.code !== 0) throw new Error(`ckpt dump -t ${pid} -D ${dir} failed: ${show(r)}`);
  return r;
}

/**
 * `ckpt restore -D DIR -d --pidfile F`; throws with ckpt's output unless it succeeds. Returns the
 * PID from the pidfile. The restored process, orphaned when ckpt exits, is then this (subreaper)
 * process's child.
 */
export async function restoreDetached(dir: string): Promise<{ pid: number; run: CliRun }> {
  const pidfile = `${dir}.pid`;
  try {
    const run = await ckpt(['restore', '-D', dir, '-d', '--pidfile', pidfile]);
    if (run.code !== 0) throw new Error(`ckpt restore -D ${dir} -d failed: ${show(run)}`);
    return { pid: Number(fs.readFileSync(pidfile, 'utf8').trim()), run };
  } finally {
    fs.rmSync(pidfile, { force: true });
  }
}

/** Fields of /proc/PID/stat a restore must keep. */
export function identity(pid: number): { state: string; ppid: number; pgrp: number; session: number; comm: string } {
  const st = readStat(pid);
  return { state: st.state, ppid: st.ppid, pgrp: st.pgrp, session: st.session, comm: st.comm };
}

export function exeOf(pid: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

function ppidOf(pid: number): number | undefined {
  try {
    return readStat(pid).ppid;
  } catch {
    return undefined;
  }
}

/**
 * At teardown, SIGKILLs and reaps the restored `pid` if it is still our child (restored
 * processes are reparented to this subreaper): never a process that merely reused the PID.
 */
export function killRestoredAtTeardown(t: Teardown, pid: number): void {
  t.teardown(async () => {
    if (ppidOf(pid) === process.pid) await killAndReap(pid);
  });
}

/**
 * Dumps a fixture (which kills it), waits until Node has reaped the original, restores it
 * detached and checks that it came back with its PID. Returns the CLI runs for timing.
 */
export async function cycle(t: Teardown, fx: FixtureProcess, dir: string): Promise<{ dump: CliRun; restore: CliRun }> {
  const d = await dump(fx.pid, dir);
  const st = await fx.exited;
  if (st.signal !== 9) throw new Error(`the dumped fixture ended with ${JSON.stringify(st)}, not SIGKILL`);
  const r = await restoreDetached(dir);
  if (r.pid !== fx.pid) throw new Error(`restored as PID ${r.pid}, dumped as ${fx.pid}`);
  killRestoredAtTeardown(t, r.pid);
  return { dump: d, restore: r.run };
}

/** Every "tick N ok" number of a fixture log, in order. */
export function tickNumbers(lines: string[]): number[] {
  return lines.flatMap((l) => {
    const m = /^tick (\d+) ok/.exec(l);
    return m ? [Number(m[1])] : [];
  });
}

/** The values of `key=N` on tick lines, in order. */
export function tickValues(lines: string[], key: string): number[] {
  const re = new RegExp(`^tick \\d+ ok .*\\b${key}=(\\d+)`);
  return lines.flatMap((l) => {
    const m = re.exec(l);
    return m ? [Number(m[1])] : [];
  });
}

/** Whether numbers go up by exactly one each time (a log of ticks without gaps or repeats). */
export function consecutive(ns: number[]): boolean {
  return ns.every((n, i) => i === 0 || n === ns[i - 1]! + 1);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `cond` every 20 ms until it is true; throws `what` after timeoutMs. */
export async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export interface Program {
  pid: number;
  child: ChildProcess;
  exited: Promise<ExitStatus>;
}

/**
 * Starts a program (not a fixture) in its own session, stdio on /dev/null. Teardown kills the
 * original child, or, once that has exited, a restored process holding its PID as our child.
 */
export function startProgram(t: Teardown, file: string, args: string[], cwd: string): Program {
  const child = spawn(file, args, { detached: true, stdio: 'ignore', cwd });
  if (child.pid === undefined) throw new Error(`spawn ${file} failed`);
  const pid = child.pid;
  const exited = trackChildProcess(child);
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    } else if (ppidOf(pid) === process.pid) {
      await killAndReap(pid);
    }
  });
  return { pid, child, exited };
}

/** Lines of a text file; [] while it does not exist. */
export function fileLines(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

export { reapPid };
