// Terminals. A pty whose master is held inside the tree is made again: ckpt opens /dev/ptmx until
// the kernel hands out the same index, and gives the pair its termios, window size, lock and
// packet mode; each slave description is /dev/pts/N opened again (so is /dev/tty when it is
// such a pty). Any other terminal (a pty whose master is outside the tree, /dev/tty, a console)
// belongs to whoever started the tree: it is dumped only as a shell job (--shell-job) and
// restored as ckpt's own terminal.
//
// Bytes in flight inside a pty (written to one side, not yet read at the other) cannot be read
// without taking them away from the process: they are not saved, and the dump says so.
//
// Controlling terminals: a session leader of the tree gets its terminal back with TIOCSCTTY
// before it has children (who inherit it), and the foreground group with TIOCSPGRP.
import fs from 'node:fs';
import path from 'node:path';
import tty from 'node:tty';
import { closeFd, fcntl, F_SETFL } from '../../sys/files.js';
import { listFds, readFdLink, readStat } from '../../sys/proc.js';
import type { RemoteScratch, RemoteThread } from '../../sys/remote.js';
import { pullFd } from '../../sys/sockets.js';
import {
  bytesWaiting, exclusive, getTermios, getWinsize, packetMode, ptyIndex, ptyLocked, setExclusive, setPacketMode,
  setForegroundGroup, setPtyLocked, setTermios, setWinsize, TIOCSCTTY, TIOCSPGRP, type Winsize,
} from '../../sys/tty.js';
import { O_CLOEXEC, type FileDumpContext, type FileKind, type FileRecordBase, type FileRestoreContext } from './types.js';

const O_ACCMODE = 3;
const O_RDWR = 2;
const O_NOCTTY = 0o400;
const O_NONBLOCK = 0o4000;

export const major = (rdev: bigint) => Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
export const minor = (rdev: bigint) => Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));

/** Terminal majors: virtual consoles and serial (4), /dev/tty, console, ptmx (5), pty masters and slaves. */
const TTY_MAJORS = new Set([4, 5, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143]);
const TTYAUX_MAJOR = 5;
const PTMX_MINOR = 2;
const DEV_TTY_MINOR = 0;
const PTS_MAJOR_FIRST = 136;
const PTS_MAJOR_LAST = 143;

export const isTerminal = (rdev: bigint) => TTY_MAJORS.has(major(rdev));
const isPtmx = (rdev: bigint) => major(rdev) === TTYAUX_MAJOR && minor(rdev) === PTMX_MINOR;
/** The index N of /dev/pts/N, or undefined when rdev is no pty slave. */
function slaveIndex(rdev: bigint): number | undefined {
  const m = major(rdev);
  return m >= PTS_MAJOR_FIRST && m <= PTS_MAJOR_LAST ? (m - PTS_MAJOR_FIRST) * 256 + minor(rdev) : undefined;
}

/** What a pty pair is beyond its index, saved with its master. */
export interface PtyState {
  /** struct termios2 of the slave, hex. */
  termios: string;
  winsize: Winsize;
  /** TIOCSPTLCK: the slave cannot be opened yet. */
  locked: boolean;
  /** TIOCPKT: reads at the master start with a status byte. */
  packet: boolean;
}

export interface TtyFileRecord extends FileRecordBase {
  kind: 'tty';
  /** master and slave: the two sides of pty `index`, inside the tree; external: a shell job's terminal. */
  role: 'master' | 'slave' | 'external';
  /** As opened: /dev/ptmx, /dev/pts/3, /dev/tty, /dev/console, ... */
  path: string;
  flags: number;
  /** The device, major:minor (a controlling terminal is named by it in /proc/PID/stat). */
  rdev: string;
  index?: number;
  /** Slave: TIOCEXCL, no further opens. */
  exclusive?: boolean;
  /** Master: the pair's state. */
  pty?: PtyState;
}

/** The devpts directory a ptmx path belongs to, and back: /dev/ptmx serves /dev/pts. */
const devptsOf = (ptmx: string) => (ptmx === '/dev/ptmx' ? '/dev/pts' : path.dirname(ptmx));
const ptmxOf = (devpts: string) => (devpts === '/dev/pts' ? '/dev/ptmx' : path.join(devpts, 'ptmx'));

/** A terminal the dump does not take: named with its fd and process, and what would take it. */
export class UnsupportedTerminalError extends Error {}

interface Holder { pid: number; fd: number }

/** The masters and slaves of ptys held anywhere in the tree, by pty index (looked at once per dump). */
function ptysOfTree(ctx: FileDumpContext): { masters: Map<number, Holder & { path: string }>; slaves: Map<number, Holder> } {
  const known = ctx.seen.get('ptys') as ReturnType<typeof ptysOfTree> | undefined;
  if (known) return known;
  const found: ReturnType<typeof ptysOfTree> = { masters: new Map(), slaves: new Map() };
  for (const pid of ctx.tree) {
    for (const fd of listFds(pid)) {
      let rdev: bigint;
      try {
        const st = fs.statSync(`/proc/${pid}/fd/${fd}`, { bigint: true });
        if (!st.isCharacterDevice()) continue;
        rdev = st.rdev;
      } catch {
        continue; // an fd that cannot be followed is no terminal of ours
      }
      const index = slaveIndex(rdev);
      if (index !== undefined) found.slaves.set(index, { pid, fd });
      else if (isPtmx(rdev)) {
        const copy = pullFd(pid, fd);
        try {
          found.masters.set(ptyIndex(copy), { pid, fd, path: readFdLink(pid, fd) });
        } finally {
          closeFd(copy);
        }
      }
    }
  }
  ctx.seen.set('ptys', found);
  return found;
}

function collectMaster(ctx: FileDumpContext): Omit<TtyFileRecord, 'id' | 'kind'> {
  const { pid, fd, link, stat, fdinfo } = ctx;
  if ((fdinfo.flags & O_ACCMODE) !== O_RDWR) {
    throw new UnsupportedTerminalError(`unsupported fd ${fd}: pty master ${link} not opened read-write in process ${pid}`);
  }
  const copy = pullFd(pid, fd);
  try {
    const index = ptyIndex(copy);
    const locked = ptyLocked(copy);
    const slave = ptysOfTree(ctx).slaves.get(index);
    if (locked && slave) {
      throw new UnsupportedTerminalError(`unsupported fd ${fd}: pty ${index} locked again while its slave is open, in process ${pid}`);
    }
    // Written by the slave, waiting at the master; written to the master, waiting at the slave.
    const toMaster = bytesWaiting(copy);
    let toSlave = 0;
    if (slave) {
      const slaveCopy = pullFd(slave.pid, slave.fd);
      try {
        toSlave = bytesWaiting(slaveCopy);
      } finally {
        closeFd(slaveCopy);
      }
    }
    if (toMaster + toSlave > 0) {
      ctx.warn(`pty ${index} (master fd ${fd} of process ${pid}): ${toSlave} bytes written to the master and ${toMaster} `
        + 'written to the slave were not read yet: the image does not hold them');
    }
    return {
      role: 'master', path: link, flags: fdinfo.flags & ~O_CLOEXEC, rdev: `${major(stat.rdev)}:${minor(stat.rdev)}`, index,
      pty: { termios: getTermios(copy).toString('hex'), winsize: getWinsize(copy), locked, packet: packetMode(copy) },
    };
  } finally {
    closeFd(copy);
  }
}

/** A description of the slave of pty `index` (path: as opened, or the slave's for /dev/tty). */
function collectSlave(ctx: FileDumpContext, index: number, path: string, rdev: bigint): Omit<TtyFileRecord, 'id' | 'kind'> {
  const copy = pullFd(ctx.pid, ctx.fd);
  try {
    return { role: 'slave', path, flags: ctx.fdinfo.flags & ~O_CLOEXEC, rdev: `${major(rdev)}:${minor(rdev)}`, index, exclusive: exclusive(copy) };
  } finally {
    closeFd(copy);
  }
}

/** The master side of pty `index` in ckpt, made on first use: every slave opened later needs it. */
function ptyPair(ctx: FileRestoreContext, index: number, ptmx: string): number {
  const key = `pty:${index}`;
  const made = ctx.shared.get(key) as { master: number } | undefined;
  if (made) return made.master;
  // The kernel hands out the lowest free index: hold every lower one until ours comes.
  const lower: number[] = [];
  try {
    for (;;) {
      const fd = fs.openSync(ptmx, O_RDWR | O_NOCTTY | O_CLOEXEC);
      const got = ptyIndex(fd);
      if (got === index) {
        ctx.shared.set(key, { master: fd });
        setPtyLocked(fd, false);
        return fd;
      }
      lower.push(fd);
      if (got > index) throw new Error(`pty ${index} is in use`);
    }
  } finally {
    for (const fd of lower) closeFd(fd);
  }
}


/** ckpt's own terminal, for a shell job's: a terminal on stdin, stdout or stderr, else /dev/tty. */
export function ownTerminal(): string | undefined {
  // A pty master is a terminal too, but opening its path again would make a new pty.
  for (const fd of [0, 1, 2]) if (tty.isatty(fd) && !isPtmx(fs.fstatSync(fd, { bigint: true }).rdev)) return fs.readlinkSync(`/proc/self/fd/${fd}`);
  try {
    fs.closeSync(fs.openSync('/dev/tty', O_RDWR | O_NOCTTY | O_CLOEXEC));
    return '/dev/tty';
  } catch {
    return undefined;
  }
}

export const terminals: FileKind<TtyFileRecord> = {
  kind: 'tty',

  matches: ({ stat }) => stat.isCharacterDevice() && isTerminal(stat.rdev),

  async collect(ctx) {
    if (isPtmx(ctx.stat.rdev)) return collectMaster(ctx);
    const index = slaveIndex(ctx.stat.rdev);
    if (index !== undefined && ptysOfTree(ctx).masters.has(index)) return collectSlave(ctx, index, ctx.link, ctx.stat.rdev);
    // /dev/tty is the process's controlling terminal: when that is a pty of the tree, it is
    // that pty's slave, opened by its own path at restore.
    if (major(ctx.stat.rdev) === TTYAUX_MAJOR && minor(ctx.stat.rdev) === DEV_TTY_MINOR) {
      const ctty = BigInt(readStat(ctx.pid).tty_nr);
      const cttyIndex = slaveIndex(ctty);
      if (cttyIndex !== undefined && ptysOfTree(ctx).masters.has(cttyIndex)) {
        return collectSlave(ctx, cttyIndex, path.join(devptsOf(ptysOfTree(ctx).masters.get(cttyIndex)!.path), String(cttyIndex)), ctty);
      }
    }
    if (!ctx.shellJob) {
      throw new UnsupportedTerminalError(`unsupported fd ${ctx.fd}: terminal ${ctx.link} in process ${ctx.pid} is outside the dumped tree `
        + '(a shell\'s terminal): use --shell-job to dump it as a shell job');
    }
    return { role: 'external', path: ctx.link, flags: ctx.fdinfo.flags & ~O_CLOEXEC, rdev: `${major(ctx.stat.rdev)}:${minor(ctx.stat.rdev)}` };
  },

  async open(ctx, rec) {
    const flags = (rec.flags & ~O_CLOEXEC) | O_NOCTTY | O_CLOEXEC;
    if (rec.role === 'master') {
      const fd = ptyPair(ctx, rec.index!, rec.path);
      const pty = rec.pty!;
      setTermios(fd, Buffer.from(pty.termios, 'hex'));
      setWinsize(fd, pty.winsize);
      setPacketMode(fd, pty.packet);
      if (pty.locked) setPtyLocked(fd, true);
      fcntl(fd, F_SETFL, rec.flags & O_NONBLOCK);
      return fd;
    }
    if (rec.role === 'slave') {
      ptyPair(ctx, rec.index!, ptmxOf(path.dirname(rec.path)));
      const fd = fs.openSync(rec.path, flags);
      if (rec.exclusive) setExclusive(fd, true);
      return fd;
    }
    const own = ownTerminal();
    if (!own) throw new Error(`no terminal to give the shell job in place of ${rec.path}`);
    return fs.openSync(own, flags);
  },
};

/**
 * Makes group pgid (of ckpt's session) the foreground group of ckpt's terminal; returns why not,
 * or null.
 */
export function makeForeground(pgid: number): string | null {
  const own = ownTerminal();
  if (!own) return 'ckpt has no terminal';
  let fd: number | undefined;
  try {
    fd = fs.openSync(own, O_RDWR | O_NOCTTY | O_CLOEXEC);
    setForegroundGroup(fd, pgid);
    return null;
  } catch (e) {
    return `${own}: ${(e as Error).message}`;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Why the terminals of an image cannot be had here, or null: a pty index in use, a shell job
 * restored without --shell-job, or no terminal of ckpt's to give it.
 */
export function terminalsUnavailable(files: FileRecordBase[], shellJob: boolean): string | null {
  const ttys = files.filter((f): f is TtyFileRecord => f.kind === 'tty');
  for (const f of ttys) {
    if (f.role !== 'master') continue;
    const slave = path.join(devptsOf(f.path), String(f.index));
    if (fs.existsSync(slave)) return `pty ${f.index} is in use (${slave} exists)`;
  }
  const external = ttys.filter((f) => f.role === 'external');
  if (external.length === 0) return null;
  const names = [...new Set(external.map((f) => f.path))].join(', ');
  if (!shellJob) return `the image is a shell job (it holds ${names}, a terminal outside the dumped tree): restore it with --shell-job`;
  if (!ownTerminal()) return `--shell-job: ckpt has no terminal to give the shell job (stdin, stdout and stderr are no terminals, /dev/tty cannot be opened)`;
  return null;
}

/**
 * The file of the image that is terminal tty_nr (a controlling terminal, as /proc/PID/stat
 * names it). When the tree holds only the master of that pty, a description of its slave is
 * added to the image, held by no descriptor.
 */
export function terminalFile(files: FileRecordBase[], ttyNr: number): TtyFileRecord | undefined {
  const rdev = `${major(BigInt(ttyNr))}:${minor(BigInt(ttyNr))}`;
  const ttys = files.filter((f): f is TtyFileRecord => f.kind === 'tty');
  const held = ttys.find((f) => f.role !== 'master' && f.rdev === rdev);
  if (held) return held;
  const index = slaveIndex(BigInt(ttyNr));
  const master = ttys.find((f) => f.role === 'master' && f.index === index);
  if (!master) return undefined;
  const slave: TtyFileRecord = {
    id: files.length, kind: 'tty', role: 'slave', path: path.join(devptsOf(master.path), String(index)), flags: O_RDWR, rdev, index,
  };
  files.push(slave);
  return slave;
}

/**
 * Runs ioctl(fd, request, arg) inside a restored process on its own copy of ckpt's descriptor
 * `fd`, taken for the call only (the process's table is not restored yet).
 */
function ioctlWithCopy(remote: RemoteThread, fd: number, request: number, arg: bigint | number): void {
  const pidfd = Number(remote.call('pidfd_open', process.pid, 0));
  try {
    const copy = Number(remote.call('pidfd_getfd', pidfd, fd, 0));
    try {
      remote.call('ioctl', copy, request, arg);
    } finally {
      remote.call('close', copy);
    }
  } finally {
    remote.call('close', pidfd);
  }
}

/** A new session leader (no children yet) takes terminal `fd` (ckpt's) as its controlling terminal. */
export function acquireTerminal(leader: RemoteThread, fd: number): void {
  ioctlWithCopy(leader, fd, TIOCSCTTY, 0);
}

/** The session leader makes group pgid the foreground group of its terminal `fd` (ckpt's). */
export function setForeground(leader: RemoteThread, scratch: RemoteScratch, fd: number, pgid: number): void {
  const arg = Buffer.alloc(4);
  arg.writeInt32LE(pgid, 0);
  ioctlWithCopy(leader, fd, TIOCSPGRP, scratch.put(arg));
}
