// The file descriptor table: one dispatcher over every kind of descriptor ckpt knows. A
// descriptor no module claims stops the dump with its number, kind and process.
import fs from 'node:fs';
import { trySyscall } from '../../sys/libc.js';
import { listFds, readFdinfo, readFdLink } from '../../sys/proc.js';
import { devices, type DeviceFdRecord } from './device.js';
import { regularFiles, type RegularFdRecord } from './regular.js';
import type { FdDumpContext, FdKind, FdRecordBase, FdRestoreContext } from './types.js';

/** A descriptor sharing its open file description with a lower-numbered one of the process. */
export interface DupFdRecord extends FdRecordBase { kind: 'dup'; of: number }

export type FdRecord = RegularFdRecord | DeviceFdRecord | DupFdRecord;

const NR_KCMP = 312;
const KCMP_FILE = 0;

function sameOpenFile(pid: number, fd1: number, fd2: number): boolean {
  return trySyscall(NR_KCMP, pid, pid, KCMP_FILE, fd1, fd2) === 0;
}

const KINDS: FdKind<any>[] = [regularFiles, devices];

const O_CLOEXEC = 0o2000000;

export class UnsupportedFdError extends Error {
  constructor(readonly pid: number, readonly fd: number, readonly what: string) {
    super(`unsupported fd ${fd}: ${what} in process ${pid}`);
    this.name = 'UnsupportedFdError';
  }
}

/** What a descriptor is, in words, for errors: 'pipe', 'socket', 'eventfd', 'tty', ... */
export function describeFd(link: string, stat: fs.BigIntStats): string {
  const m = /^(\w+):\[(\w*)\]/.exec(link) ?? /^anon_inode:\[?([\w-]+)\]?/.exec(link);
  if (link.startsWith('anon_inode:')) return m ? m[1] : link;
  if (m) return m[1];
  if (stat.isCharacterDevice()) return `terminal ${link}`;
  if (stat.isFIFO()) return `fifo ${link}`;
  if (stat.isSocket()) return `socket ${link}`;
  return link;
}

export async function collectFds(pid: number, saveBlob: FdDumpContext['saveBlob']): Promise<FdRecord[]> {
  const out: FdRecord[] = [];
  const seen: { fd: number; stat: fs.BigIntStats }[] = [];
  for (const fd of listFds(pid)) {
    const link = readFdLink(pid, fd);
    const stat = fs.statSync(`/proc/${pid}/fd/${fd}`, { bigint: true });
    const fdinfo = readFdinfo(pid, fd);
    // A descriptor made by dup() shares its open file description (offset, flags) with another.
    const original = seen.find((s) => s.stat.ino === stat.ino && s.stat.dev === stat.dev && sameOpenFile(pid, s.fd, fd));
    if (original) {
      out.push({ fd, kind: 'dup', cloexec: (fdinfo.flags & O_CLOEXEC) !== 0, of: original.fd });
      continue;
    }
    seen.push({ fd, stat });
    const ctx: FdDumpContext = { pid, fd, link, stat, fdinfo, saveBlob };
    const kind = KINDS.find((k) => k.matches(ctx));
    if (!kind) throw new UnsupportedFdError(pid, fd, describeFd(link, stat));
    out.push({ fd, kind: kind.kind, cloexec: (fdinfo.flags & O_CLOEXEC) !== 0, ...(await kind.collect(ctx)) } as FdRecord);
  }
  return out;
}

/**
 * Opens every descriptor of the image in the restored process at its number. The process must
 * have no descriptors yet. Temporary files made on the way are removed before returning.
 */
export async function restoreFds(ctx: Omit<FdRestoreContext, 'addTemporary'>, fds: FdRecord[]): Promise<void> {
  const temporaries: string[] = [];
  const full: FdRestoreContext = { ...ctx, addTemporary: (p) => temporaries.push(p) };
  try {
    for (const rec of fds) {
      if (rec.kind === 'dup') {
        ctx.remote.call('dup3', rec.of, rec.fd, rec.cloexec ? O_CLOEXEC : 0);
        continue;
      }
      const kind = KINDS.find((k) => k.kind === rec.kind);
      if (!kind) throw new Error(`image has fd ${rec.fd} of unknown kind ${rec.kind}`);
      const got = await kind.open(full, rec as FdRecordBase);
      if (got !== rec.fd) {
        ctx.remote.call('dup3', got, rec.fd, rec.cloexec ? O_CLOEXEC : 0);
        // The lowest free number may be one a later descriptor needs: free it again.
        ctx.remote.call('close', got);
      } else if (rec.cloexec) {
        ctx.remote.call('fcntl', got, 2 /* F_SETFD */, 1 /* FD_CLOEXEC */);
      }
    }
  } finally {
    for (const p of temporaries) fs.rmSync(p, { force: true });
  }
}
