// inotify: the instance's watches, each with its watch descriptor (wd), its mask and the inode
// it watches (by path, inode number and file handle), and the instance's O_NONBLOCK.
//
// Dump: /proc/PID/fdinfo names each watched inode by number, device and file handle. The
// handle is opened (open_by_handle_at, on a mount of that device) to find the inode's path,
// which must lead back to the same inode: a watch on an inode that was deleted, or that no path
// reaches, is refused. Events queued and not yet read are only counted (FIONREAD): reading
// them would take them from the process, and a dump must leave it as it was. They are not
// restored (nothing can queue an inotify event but the event itself); `ckpt show` tells how
// many bytes of them there were, like the events that happen between dump and restore, which
// the process never sees either.
//
// Restore: each watch is added again on its very inode (through an O_PATH descriptor of it,
// found by path or else by file handle) and given its old wd: the kernel hands out wds
// upwards from the last one given, so a watch that comes out below its number is removed and
// added again until it has it. Each removal queues an IN_IGNORED event; they are read away
// before the process gets the instance. The next wd the kernel gives after the restore follows
// the highest restored one, where at dump it followed the last one ever given.
import fs from 'node:fs';
import { closeFd, fcntl, F_SETFL } from '../../sys/files.js';
import { fileHandle, inotifyAddWatch, inotifyInit, inotifyRmWatch, openByHandle, readableBytes } from '../../sys/inotify.js';
import { errnoName } from '../../sys/libc.js';
import { readMountinfo } from '../../sys/proc.js';
import { pullFd } from '../../sys/sockets.js';
import type { FileKind, FileRecordBase } from './types.js';

const O_NONBLOCK = 0o4000;
const O_RDONLY = 0;
const O_DIRECTORY = 0o200000;
const O_NOFOLLOW = 0o400000;
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;
const IN_ALL_EVENTS = 0xfff;
const IN_MASK_CREATE = 0x10000000;
const IN_EXCL_UNLINK = 0x04000000;
const IN_ONESHOT = 0x80000000;
/** What fdinfo shows of a watch's mask: its events and the flags the kernel keeps. */
const WATCH_MASK = (IN_ALL_EVENTS | IN_EXCL_UNLINK | IN_ONESHOT) >>> 0;
const DELETED = ' (deleted)';
const ENODEV = 19;

export interface InotifyWatch {
  wd: number;
  /** Events, IN_ONESHOT and IN_EXCL_UNLINK. */
  mask: number;
  /** A path of the watched inode at dump time. */
  path: string;
  /** The watched inode's number (decimal) and its filesystem's device ("major:minor"). */
  ino: string;
  dev: string;
  /** The inode's file handle (for open_by_handle_at): type, and its bytes in hex. */
  handle: { type: number; bytes: string };
}

export interface InotifyFileRecord extends FileRecordBase {
  kind: 'inotify';
  flags: number;
  /** In ascending wd order. */
  watches: InotifyWatch[];
  /** Bytes of events queued and unread at dump (not restored). */
  unread: number;
}

export class UnsupportedInotifyError extends Error {}

const WATCH_LINE = /^inotify wd:([0-9a-f]+) ino:([0-9a-f]+) sdev:([0-9a-f]+) mask:([0-9a-f]+) ignored_mask:[0-9a-f]+(?: fhandle-bytes:([0-9a-f]+) fhandle-type:([0-9a-f]+) f_handle:([0-9a-f]+))?$/;

/** "major:minor" of a device number as stat gives it (glibc's encoding). */
function statDev(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** The inode fd is open on, and its link count. */
function identity(fd: number): { dev: string; ino: string; nlink: bigint } {
  const st = fs.fstatSync(fd, { bigint: true });
  return { dev: statDev(st.dev), ino: st.ino.toString(), nlink: st.nlink };
}

/** "dev ino" of what is at path (not following a last symlink); undefined when nothing is. */
function inodeAt(path: string): string | undefined {
  try {
    const st = fs.lstatSync(path, { bigint: true });
    return `${statDev(st.dev)} ${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Opens the inode of a file handle on a mount of device dev; -errno of the last try when none
 * opens it (-ENODEV when ckpt sees no mount of dev).
 */
function openHandle(dev: string, handle: InotifyWatch['handle'], flags: number): number {
  let result = -ENODEV;
  for (const m of readMountinfo('self').filter((e) => `${e.major}:${e.minor}` === dev)
    .sort((a, b) => Number(b.root === '/') - Number(a.root === '/'))) {
    let mountFd: number;
    try {
      mountFd = fs.openSync(m.mountPoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    } catch {
      continue; // mounted over, or gone: another mount of dev may do
    }
    try {
      if (identity(mountFd).dev !== dev) continue;
      result = openByHandle(mountFd, handle.type, Buffer.from(handle.bytes, 'hex'), flags);
      if (result >= 0) return result;
    } finally {
      closeFd(mountFd);
    }
  }
  return result;
}

function parseWatch(line: string, pid: number, fd: number): InotifyWatch {
  const m = WATCH_LINE.exec(line);
  if (!m) throw new Error(`/proc/${pid}/fdinfo/${fd}: cannot read inotify watch "${line}"`);
  const wd = parseInt(m[1]!, 16);
  const ino = BigInt(`0x${m[2]}`).toString();
  const sdev = parseInt(m[3]!, 16);
  // The kernel's own dev_t: 12 bits of major above 20 bits of minor.
  const dev = `${sdev >>> 20}:${sdev & 0xfffff}`;
  const mask = parseInt(m[4]!, 16);
  const what = `unsupported fd ${fd}: inotify watch ${wd} on inode ${ino} of device ${dev}`;
  if ((mask & ~WATCH_MASK) !== 0) {
    throw new UnsupportedInotifyError(`${what} has mask 0x${mask.toString(16)}, with flags ckpt does not know, in process ${pid}`);
  }
  if (m[5] === undefined) throw new UnsupportedInotifyError(`${what}, a filesystem without file handles, in process ${pid}`);
  const handle = { type: parseInt(m[6]!, 16), bytes: m[7]! };
  if (handle.bytes.length !== 2 * parseInt(m[5], 16)) throw new Error(`/proc/${pid}/fdinfo/${fd}: file handle of watch ${wd} is not fhandle-bytes long`);
  const opened = openHandle(dev, handle, O_PATH);
  if (opened < 0) throw new UnsupportedInotifyError(`${what}: its file handle does not open (${errnoName(-opened)}), in process ${pid}`);
  try {
    const found = identity(opened);
    if (found.ino !== ino || found.dev !== dev) throw new Error(`${what}: its file handle opened inode ${found.ino} of device ${found.dev}, in process ${pid}`);
    const path = fs.readlinkSync(`/proc/self/fd/${opened}`);
    if (found.nlink === 0n || path.endsWith(DELETED)) throw new UnsupportedInotifyError(`${what}, a deleted file, in process ${pid}`);
    if (inodeAt(path) !== `${dev} ${ino}`) throw new UnsupportedInotifyError(`${what}, which no path reaches, in process ${pid}`);
    return { wd, mask, path, ino, dev, handle };
  } finally {
    closeFd(opened);
  }
}

/**
 * An O_PATH descriptor of the watched inode: at its path, or else by its file handle. The
 * handle, which holds a generation number besides the inode number, tells the very inode from
 * a new file that was given a freed inode number.
 */
function openWatched(w: InotifyWatch): number {
  let atPath: string;
  let opened: number | undefined;
  try {
    opened = fs.openSync(w.path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    const found = identity(opened);
    const handle = fileHandle(opened);
    if (found.dev === w.dev && found.ino === w.ino && handle.type === w.handle.type && handle.bytes.toString('hex') === w.handle.bytes) return opened;
    atPath = `${w.path} is another file now (inode ${found.ino} of device ${found.dev})`;
  } catch (e) {
    atPath = `${w.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
  }
  if (opened !== undefined) closeFd(opened);
  const fd = openHandle(w.dev, w.handle, O_PATH);
  if (fd < 0) {
    throw new Error(`inotify watch ${w.wd} on inode ${w.ino} of device ${w.dev}: ${atPath}, and its file handle does not open (${errnoName(-fd)})`);
  }
  return fd;
}

/** Reads every queued event away (fd is non-blocking). */
function drain(fd: number): void {
  const buf = Buffer.alloc(65536);
  for (;;) {
    try {
      fs.readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') return;
      throw e;
    }
  }
}

export const inotifies: FileKind<InotifyFileRecord> = {
  kind: 'inotify',

  matches: ({ link }) => link === 'anon_inode:inotify',

  async collect({ pid, fd, fdinfo }) {
    const watches = fdinfo.lines.filter((l) => l.startsWith('inotify ')).map((l) => parseWatch(l, pid, fd))
      .sort((a, b) => a.wd - b.wd);
    const copy = pullFd(pid, fd);
    try {
      return { flags: fdinfo.flags & O_NONBLOCK, watches, unread: readableBytes(copy) };
    } finally {
      closeFd(copy);
    }
  },

  async open(_ctx, rec) {
    const fd = inotifyInit(O_NONBLOCK);
    try {
      for (const w of rec.watches) {
        const target = openWatched(w);
        try {
          // IN_MASK_CREATE: two watches of one instance on one inode would be a damaged image.
          const add = () => inotifyAddWatch(fd, `/proc/self/fd/${target}`, (w.mask & WATCH_MASK) | IN_MASK_CREATE);
          let wd = add();
          while (wd < w.wd) {
            inotifyRmWatch(fd, wd);
            wd = add();
          }
          if (wd !== w.wd) throw new Error(`inotify watch ${w.wd} on ${w.path}: the kernel gave wd ${wd}`);
        } finally {
          closeFd(target);
        }
      }
      drain(fd);
      if ((rec.flags & O_NONBLOCK) === 0) fcntl(fd, F_SETFL, 0);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    return fd;
  },
};
