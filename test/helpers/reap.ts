// Reaping processes that Node's child_process does not know: restored processes, reparented to
// this test process once it is a child subreaper. Children that child_process spawned are
// reaped by libuv; waiting on them here would steal their exit status and Node would never see
// them end, so those go through their 'exit' event instead (see trackChildProcess).
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const prctl = libc.func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)');
const waitid = libc.func('int waitid(int idtype, uint32_t id, void *infop, int options)');

const PR_SET_CHILD_SUBREAPER = 36;
const P_PID = 1;
const WNOHANG = 1;
const WEXITED = 4;
const ECHILD = 10;
// siginfo_t on x86_64: si_signo, si_errno, si_code, (pad), then for SIGCHLD si_pid, si_uid, si_status.
const SIGINFO_SIZE = 128;
const SI_CODE = 8;
const SI_PID = 16;
const SI_STATUS = 24;
const CLD_EXITED = 1;

export interface ExitStatus {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  /** Signal number that ended it, or null. */
  signal: number | null;
}

/** Makes this process a child subreaper: orphans of its descendants become its children. */
export function makeSubreaper(): void {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) !== 0) {
    throw new Error(`prctl(PR_SET_CHILD_SUBREAPER): errno ${koffi.errno()}`);
  }
}

const tracked = new Map<number, Promise<ExitStatus>>();

/**
 * Registers a child_process child so that reapPid/killAndReap wait for its 'exit' event rather
 * than calling waitid on it.
 */
export function trackChildProcess(child: ChildProcess): Promise<ExitStatus> {
  const pid = child.pid;
  if (pid === undefined) throw new Error('child process has no pid (spawn failed)');
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      tracked.delete(pid);
      resolve({ code, signal: signal === null ? null : os.constants.signals[signal] });
    });
  });
  if (child.exitCode === null && child.signalCode === null) tracked.set(pid, exited);
  return exited;
}

function procState(pid: number): { state: string; ppid: number } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: f[0]!, ppid: Number(f[1]) };
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until `pid` has exited and is reaped. For a child of ours that child_process did not
 * spawn (a restored process, or an orphan reparented to us as subreaper) it polls
 * waitid(P_PID, pid, WEXITED|WNOHANG) and returns its status. For a process that is not our
 * child it waits for it to disappear and returns null. Throws after timeoutMs, naming a zombie
 * held by another parent ("PID N is a zombie of PPID M").
 */
export async function reapPid(pid: number, timeoutMs = 5000): Promise<ExitStatus | null> {
  const child = tracked.get(pid);
  if (child !== undefined) return child;
  const info = Buffer.alloc(SIGINFO_SIZE);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    info.fill(0);
    if (waitid(P_PID, pid, info, WEXITED | WNOHANG) === 0) {
      if (info.readInt32LE(SI_PID) === pid) {
        const status = info.readInt32LE(SI_STATUS);
        return info.readInt32LE(SI_CODE) === CLD_EXITED ? { code: status, signal: null } : { code: null, signal: status };
      }
    } else {
      const errno = koffi.errno();
      if (errno !== ECHILD) throw new Error(`waitid(${pid}): errno ${errno}`);
      const st = procState(pid);
      if (st === undefined) return null;
      if (Date.now() >= deadline) {
        throw new Error(st.state === 'Z' ? `PID ${pid} is a zombie of PPID ${st.ppid}` : `PID ${pid} is still running (state ${st.state})`);
      }
    }
    if (Date.now() >= deadline) throw new Error(`PID ${pid} did not exit within ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** SIGKILLs `pid` (gone already is fine) and waits as reapPid does. */
export async function killAndReap(pid: number, timeoutMs = 5000): Promise<ExitStatus | null> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
  return reapPid(pid, timeoutMs);
}
