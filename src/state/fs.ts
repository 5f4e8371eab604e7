// A process's place in the filesystem: working directory, root directory, umask.
import { readCwdLink, readRootLink, readStatus } from '../sys/proc.js';
import type { RemoteScratch, RemoteThread } from '../sys/remote.js';

const AT_FDCWD = -100;
const O_RDONLY_DIRECTORY = 0o200000;

export interface FsRecord { cwd: string; root: string; umask: number }

export function collectFs(pid: number): FsRecord {
  const umask = readStatus(pid).umask;
  if (umask === undefined) throw new Error(`no umask in /proc/${pid}/status`);
  return { cwd: readCwdLink(pid), root: readRootLink(pid), umask };
}

export function restoreFs(leader: RemoteThread, scratch: RemoteScratch, rec: FsRecord): void {
  const cwd = Number(leader.call('openat', AT_FDCWD, scratch.put(Buffer.from(`${rec.cwd}\0`)), O_RDONLY_DIRECTORY, 0));
  try {
    if (rec.root !== '/') leader.call('chroot', scratch.put(Buffer.from(`${rec.root}\0`)));
    leader.call('fchdir', cwd);
  } finally {
    leader.call('close', cwd);
  }
  leader.call('umask', rec.umask);
}
