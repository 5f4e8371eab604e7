// Shared by the tree tests: the CLI run as a user runs it (a separate process), the threads and
// sessions of live processes as /proc and ps show them, and killing and reaping whole sessions.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { trySyscall } from '../../src/sys/libc.js';
import { listFds, readFdinfo, readFdLink } from '../../src/sys/proc.js';
import { killAndReap, reapPid } from '../helpers/index.js';
import { cli, type CliRun } from '../runner/helpers.js';

export { cli, type CliRun };

const shown = (args: string[], r: CliRun) => `ckpt ${args.join(' ')}: exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

/** `ckpt dump -t PID -D DIR [extra]`; throws with ckpt's output unless it exits 0. */
export async function dump(pid: number, dir: string, extra: string[] = []): Promise<CliRun> {
  const args = ['dump', '-t', String(pid), '-D', dir, ...extra];
  const r = await cli(args);
  if (r.code !== 0) throw new Error(shown(args, r));
  return r;
}

/**
 * `ckpt restore -D DIR -d --pidfile DIR.pid`; throws with ckpt's output unless it exits 0.
 * Returns the PID written to the pidfile (the pidfile is removed). The restored root, orphaned
 * when ckpt exits, becomes a child of this process once it is a subreaper.
 */
export async function restoreDetached(dir: string): Promise<number> {
  const pidfile = `${dir}.pid`;
  const args = ['restore', '-D', dir, '-d', '--pidfile', pidfile];
  try {
    const r = await cli(args);
    if (r.code !== 0) throw new Error(shown(args, r));
    return Number(fs.readFileSync(pidfile, 'utf8').trim());
  } finally {
    fs.rmSync(pidfile, { force: true });
  }
}

/** The TIDs in /proc/PID/task, ascending; [] once the process is gone. */
export function taskIds(pid: number): number[] {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map(Number).sort((a, b) => a - b);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/**
 * `ps -o pid,ppid,pgid,sid,comm --no-headers -s SID`: one line per process of the session
 * (zombies included), blanks collapsed, sorted by PID.
 */
export function sessionPs(sid: number): string[] {
  let out: string;
  try {
    out = execFileSync('ps', ['-o', 'pid,ppid,pgid,sid,comm', '--no-headers', '-s', String(sid)], { encoding: 'utf8' });
  } catch (e) {
    // ps exits 1 when nothing matches.
    if ((e as { status?: number }).status === 1) return [];
    throw e;
  }
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/).join(' '))
    .filter((l) => l !== '')
    .sort((a, b) => Number(a.split(' ')[0]) - Number(b.split(' ')[0]));
}

/** PIDs of the processes of session `sid` (zombies included), from /proc. */
export function sessionPids(sid: number): number[] {
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[3]) === sid) pids.push(Number(name));
    } catch {
      // gone while we looked
    }
  }
  return pids;
}

/**
 * SIGKILLs every process of session `sid` by its PID, then reaps each: the ones that are (or
 * become, through the subreaper) children of this process are waited for, the others must go.
 * Processes that are not this test's own descendants are never in these sessions: each
 * fixture starts its own.
 */
export async function killSession(sid: number): Promise<void> {
  const pids = sessionPids(sid);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }
  // Parents first: their dead children (zombies included) are then reparented to us.
  for (const pid of pids.sort((a, b) => a - b)) await killAndReap(pid);
}

/** Reaps each PID (children of ours, or orphans reparented to this subreaper). */
export async function reapAll(pids: number[]): Promise<void> {
  for (const pid of pids) await reapPid(pid);
}

/** The values of `key=N` on "tick" lines, in order. */
export function tickValues(lines: string[], key: string): number[] {
  const re = new RegExp(`^tick \\d+ ok .*\\b${key}=(-?\\d+)`);
  return lines.flatMap((l) => {
    const m = re.exec(l);
    return m ? [Number(m[1])] : [];
  });
}

/** Every "tick N ok" number, in order. */
export function tickNumbers(lines: string[]): number[] {
  return lines.flatMap((l) => {
    const m = /^tick (\d+) ok/.exec(l);
    return m ? [Number(m[1])] : [];
  });
}

/** Whether each number is the previous one plus one. */
export const consecutive = (ns: number[]) => ns.every((n, i) => i === 0 || n === ns[i - 1]! + 1);

/** Whether each number is greater than the previous one. */
export const increasing = (ns: number[]) => ns.every((n, i) => i === 0 || n > ns[i - 1]!);

const SYS_KCMP = 312;
const KCMP_FILE = 0;

/** kcmp(KCMP_FILE): whether fd1 of pid1 and fd2 of pid2 are one open file description. */
export function sameDescription(pid1: number, fd1: number, pid2: number, fd2: number): boolean {
  const r = trySyscall(SYS_KCMP, pid1, pid2, KCMP_FILE, fd1, fd2);
  if (r < 0) throw new Error(`kcmp(${pid1}, ${pid2}, KCMP_FILE, ${fd1}, ${fd2}): errno ${-r}`);
  return r === 0;
}

/**
 * The open files of `pids` and how they are shared, in terms that survive a restore: one line
 * per fd, "PID:FD -> TARGET flags=0oN desc=#K", where pipes and other anonymous inodes are
 * numbered by first appearance ("pipe:#2": every fd on that pipe, in any process, says #2) and
 * K numbers the open file descriptions (kcmp KCMP_FILE): fds sharing one description (and so
 * its offset and flags) have the same K. File offsets are left out: the processes run on.
 */
export function fdSharing(pids: number[]): string[] {
  const inodes = new Map<string, number>();
  const descs: Array<{ pid: number; fd: number }> = [];
  const out: string[] = [];
  for (const pid of [...pids].sort((a, b) => a - b)) {
    for (const fd of listFds(pid)) {
      const link = readFdLink(pid, fd).replace(/^(\w+):\[(\d+)\]$/, (_, kind: string, ino: string) => {
        const key = `${kind}:${ino}`;
        if (!inodes.has(key)) inodes.set(key, inodes.size + 1);
        return `${kind}:#${inodes.get(key)}`;
      });
      let k = descs.findIndex((d) => sameDescription(d.pid, d.fd, pid, fd));
      if (k < 0) k = descs.push({ pid, fd }) - 1;
      out.push(`${pid}:${fd} -> ${link} flags=0o${readFdinfo(pid, fd).flags.toString(8)} desc=#${k + 1}`);
    }
  }
  return out;
}
