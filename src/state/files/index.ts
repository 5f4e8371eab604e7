// Open files: one dispatcher over every kind ckpt knows. A descriptor no module claims stops
// the dump with its number, kind and process.
//
// Dump: every descriptor of every process is matched against the open file descriptions met so
// far (same inode, and kcmp says same file): shared ones are recorded once. Restore: ckpt opens
// each description in its own process, and each restored process takes its descriptors from
// ckpt with pidfd_getfd, then moves them to their numbers.
import fs from 'node:fs';
import { closeFd } from '../../sys/files.js';
import { trySyscall } from '../../sys/libc.js';
import { listFds, readFdinfo, readFdLink } from '../../sys/proc.js';
import type { RemoteThread } from '../../sys/remote.js';
import { devices, type DeviceFileRecord } from './device.js';
import { addEpollTargets, epolls, type EpollFileRecord } from './epoll.js';
import { eventfds, type EventfdFileRecord } from './eventfd.js';
import { inetSockets, type InetFileRecord } from './inet.js';
import { inotifies, type InotifyFileRecord } from './inotify.js';
import { memfds, type MemfdFileRecord } from './memfd.js';
import { netlinkSockets, type NetlinkFileRecord } from './netlink.js';
import { pidfds, type PidfdFileRecord } from './pidfd.js';
import { fifos, pipes, type FifoFileRecord, type PipeFileRecord } from './pipe.js';
import { regularFiles, type RegularFileRecord } from './regular.js';
import { signalfds, type SignalfdFileRecord } from './signalfd.js';
import { timerfds, type TimerfdFileRecord } from './timerfd.js';
import { terminals, type TtyFileRecord } from './tty.js';
import { unixSocketFiles, type UnixFileRecord } from './unix.js';
import { O_CLOEXEC, type FdEntry, type FileDumpContext, type FileKind, type FileRestoreContext } from './types.js';

export type { FdEntry } from './types.js';
export type FileRecord = RegularFileRecord | DeviceFileRecord | PipeFileRecord | FifoFileRecord
  | EventfdFileRecord | SignalfdFileRecord | TimerfdFileRecord | InotifyFileRecord | EpollFileRecord | InetFileRecord | UnixFileRecord | MemfdFileRecord
  | PidfdFileRecord | TtyFileRecord | NetlinkFileRecord;

const KINDS: FileKind<any>[] = [memfds, regularFiles, devices, terminals, pipes, fifos, eventfds, signalfds, timerfds, inotifies, epolls, inetSockets, unixSocketFiles, netlinkSockets, pidfds];

const NR_KCMP = 312;
const KCMP_FILE = 0;

export class UnsupportedFdError extends Error {
  constructor(readonly pid: number, readonly fd: number, readonly what: string) {
    super(`unsupported fd ${fd}: ${what} in process ${pid}`);
    this.name = 'UnsupportedFdError';
  }
}

/** What a descriptor is, in words, for errors: 'pipe', 'socket', 'eventfd', 'inotify', ... */
export function describeFd(link: string, stat: fs.BigIntStats): string {
  const anon = /^anon_inode:\[?([\w-]+)\]?/.exec(link);
  if (anon) return anon[1];
  const typed = /^(\w+):\[(\w*)\]/.exec(link);
  if (typed) return typed[1];
  if (stat.isFIFO()) return `fifo ${link}`;
  if (stat.isSocket()) return `socket ${link}`;
  return link;
}

/** The open file descriptions of a tree being dumped, and which descriptor holds each. */
export class FileTable {
  readonly files: FileRecord[] = [];
  private readonly holders: Array<{ pid: number; fd: number; dev: bigint; ino: bigint; id: number }> = [];
  private readonly seen = new Map<string, unknown>();

  constructor(private readonly saveBlob: FileDumpContext['saveBlob'],
    private readonly dump: Pick<FileDumpContext, 'tree' | 'shellJob' | 'warn'>) {}

  /** Every descriptor of pid, each pointing at its (possibly shared) description. */
  async collect(pid: number): Promise<FdEntry[]> {
    const out: FdEntry[] = [];
    for (const fd of listFds(pid)) {
      const link = readFdLink(pid, fd);
      const stat = fs.statSync(`/proc/${pid}/fd/${fd}`, { bigint: true });
      const fdinfo = readFdinfo(pid, fd);
      const cloexec = (fdinfo.flags & O_CLOEXEC) !== 0;
      const same = this.holders.find((h) => h.ino === stat.ino && h.dev === stat.dev
        && trySyscall(NR_KCMP, h.pid, pid, KCMP_FILE, h.fd, fd) === 0);
      if (same) {
        out.push({ fd, cloexec, file: same.id });
        continue;
      }
      const ctx: FileDumpContext = { pid, fd, link, stat, fdinfo, saveBlob: this.saveBlob, seen: this.seen, ...this.dump };
      const kind = KINDS.find((k) => k.matches(ctx));
      if (!kind) throw new UnsupportedFdError(pid, fd, describeFd(link, stat));
      const id = this.files.length;
      this.files.push({ id, kind: kind.kind, ...(await kind.collect(ctx)) } as FileRecord);
      this.holders.push({ pid, fd, dev: stat.dev, ino: stat.ino, id });
      out.push({ fd, cloexec, file: id });
    }
    // An epoll names its targets by descriptor number: now that the table is known, by open file.
    for (const f of this.files) {
      if (f.kind !== 'epoll') continue;
      for (const t of f.targets) {
        if (t.file === undefined && out.some((e) => e.file === f.id)) t.file = out.find((e) => e.fd === t.tfd)?.file;
      }
    }
    return out;
  }
}

/** What on this machine would stop some file of the image from being opened, if anything. */
export function filesUnavailable(files: FileRecord[]): string | undefined {
  for (const f of files) {
    const why = (KINDS.find((k) => k.kind === f.kind) as FileKind<FileRecord> | undefined)?.unavailable?.(f);
    if (why) return why;
  }
  return undefined;
}

/** The descriptions of an image opened in ckpt, on demand; close() when the restore is over. */
export class FileOpener {
  private readonly open = new Map<number, number>();
  private readonly temporaries: string[] = [];
  /** Epolls whose targets are added (from inside a process holding them). */
  readonly epollsFilled = new Set<number>();
  private readonly ctx: FileRestoreContext;

  constructor(private readonly files: FileRecord[], blob: FileRestoreContext['blob'], warn: FileRestoreContext['warn']) {
    this.ctx = { blob, addTemporary: (p) => this.temporaries.push(p), shared: new Map(), fdOf: (id) => this.fdOf(id), files, warn };
  }

  async fdOf(id: number): Promise<number> {
    let fd = this.open.get(id);
    if (fd === undefined) {
      const rec = this.files.find((f) => f.id === id);
      if (!rec) throw new Error(`image has no open file ${id}`);
      const kind = KINDS.find((k) => k.kind === rec.kind);
      if (!kind) throw new Error(`open file ${id} is of unknown kind ${rec.kind}`);
      fd = await kind.open(this.ctx, rec);
      this.open.set(id, fd);
    }
    return fd;
  }

  /** Throws if some epoll's targets could be added in no process (none held them all). */
  checkEpollsFilled(): void {
    const left = this.files.find((f) => f.kind === 'epoll' && this.open.has(f.id) && !this.epollsFilled.has(f.id));
    if (left) throw new Error(`epoll ${left.id}: no restored process holds all of its targets under their numbers`);
  }

  record(id: number): FileRecord | undefined {
    return this.files.find((f) => f.id === id);
  }

  /** Temporary files go as soon as every process holds its descriptors. */
  removeTemporaries(): void {
    for (const p of this.temporaries.splice(0)) fs.rmSync(p, { force: true });
  }

  close(): void {
    this.removeTemporaries();
    // Pipe ends are both in `open` and in the kinds' shared state: close each fd once.
    const fds = new Set(this.open.values());
    for (const v of this.ctx.shared.values()) {
      for (const fd of Object.values(v as Record<string, unknown>)) if (typeof fd === 'number') fds.add(fd);
    }
    for (const fd of fds) closeFd(fd);
    this.open.clear();
    this.ctx.shared.clear();
  }
}

const F_DUPFD_CLOEXEC = 1030;
const F_SETFD = 2;

/**
 * Gives the restored process (which has no descriptors yet) its table: each descriptor is taken
 * from ckpt with pidfd_getfd and moved to its number. Then the epolls it holds get their targets.
 */
export async function installFds(remote: RemoteThread, put: (data: Buffer) => bigint, opener: FileOpener, fds: FdEntry[]): Promise<void> {
  // The pidfd of ckpt sits above every number the table needs while it is in use.
  const above = fds.reduce((m, f) => Math.max(m, f.fd), 2) + 1;
  const first = Number(remote.call('pidfd_open', process.pid, 0));
  const pidfd = Number(remote.call('fcntl', first, F_DUPFD_CLOEXEC, above));
  remote.call('close', first);
  try {
    for (const e of fds) {
      const got = Number(remote.call('pidfd_getfd', pidfd, await opener.fdOf(e.file), 0));
      if (got !== e.fd) {
        remote.call('dup3', got, e.fd, e.cloexec ? O_CLOEXEC : 0);
        // The lowest free number may be one a later descriptor needs: free it again.
        remote.call('close', got);
      } else if (!e.cloexec) {
        remote.call('fcntl', got, F_SETFD, 0); // pidfd_getfd copies arrive close-on-exec
      }
    }
  } finally {
    remote.call('close', pidfd);
  }
  for (const e of fds) {
    const rec = opener.record(e.file);
    if (rec?.kind !== 'epoll' || opener.epollsFilled.has(rec.id)) continue;
    if (addEpollTargets(remote, put, e.fd, rec, fds)) opener.epollsFilled.add(rec.id);
  }
}
