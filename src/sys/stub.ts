// The seed of a restore: a plain process ckpt can seize and clone the restored process from.
//
// ckpt makes itself a child subreaper and lets a shell start `sleep` in the background: when the
// shell exits, the sleep is ckpt's child, but not one of Node's child_process children (libuv
// would otherwise reap it and swallow its ptrace stops).
import { execFileSync } from 'node:child_process';
import { syscall } from './libc.js';

const NR_PRCTL = 157;
const PR_SET_CHILD_SUBREAPER = 36;

let subreaper = false;

/** Makes this process the reaper of its orphaned descendants (once). */
export function becomeSubreaper(): void {
  if (subreaper) return;
  syscall('prctl(PR_SET_CHILD_SUBREAPER)', NR_PRCTL, PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  subreaper = true;
}

/** Starts a stub process that is a direct child of this one; returns its PID. */
export function spawnStub(): number {
  becomeSubreaper();
  const out = execFileSync('/bin/sh', ['-c', 'sleep 2147483647 </dev/null >/dev/null 2>&1 & echo $!'],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const pid = Number(out.trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`cannot start a restore stub (got "${out.trim()}")`);
  return pid;
}
