// Terminal ioctls: pty index, lock and packet mode, termios, window size, exclusive mode,
// controlling terminal and foreground group, bytes waiting.
import { syscall, trySyscall } from './libc.js';

const NR_IOCTL = 16;
const NR_RT_SIGACTION = 13;
const IOC = {
  TCGETS2: 0x802c542a, TCSETS2: 0x402c542b, TIOCGWINSZ: 0x5413, TIOCSWINSZ: 0x5414,
  TIOCGPTN: 0x80045430, TIOCSPTLCK: 0x40045431, TIOCGPTLCK: 0x80045439, TIOCGPKT: 0x80045438, TIOCPKT: 0x5420,
  TIOCGEXCL: 0x80045440, TIOCEXCL: 0x540c, TIOCNXCL: 0x540d, TIOCSPGRP: 0x5410, TIOCGPGRP: 0x540f, FIONREAD: 0x541b,
} as const;
/** ioctl numbers a restored process runs itself (remote syscalls). */
export const TIOCSCTTY = 0x540e;
export const TIOCSPGRP = IOC.TIOCSPGRP;
/** Size of struct termios2. */
export const TERMIOS2_SIZE = 44;

function ioctlInt(fd: number, name: keyof typeof IOC): number {
  const v = Buffer.alloc(4);
  syscall(`ioctl(${name})`, NR_IOCTL, fd, IOC[name], v);
  return v.readInt32LE(0);
}

function ioctlSetInt(fd: number, name: keyof typeof IOC, value: number): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value, 0);
  syscall(`ioctl(${name})`, NR_IOCTL, fd, IOC[name], v);
}

/** The index N of the pty whose master is fd (its slave is /dev/pts/N). */
export const ptyIndex = (fd: number) => ioctlInt(fd, 'TIOCGPTN');
export const ptyLocked = (fd: number) => ioctlInt(fd, 'TIOCGPTLCK') !== 0;
export const setPtyLocked = (fd: number, locked: boolean) => ioctlSetInt(fd, 'TIOCSPTLCK', locked ? 1 : 0);
export const packetMode = (fd: number) => ioctlInt(fd, 'TIOCGPKT') !== 0;
export const setPacketMode = (fd: number, on: boolean) => ioctlSetInt(fd, 'TIOCPKT', on ? 1 : 0);
export const exclusive = (fd: number) => ioctlInt(fd, 'TIOCGEXCL') !== 0;
/** Bytes waiting to be read at fd. */
export const bytesWaiting = (fd: number) => ioctlInt(fd, 'FIONREAD');

export function setExclusive(fd: number, on: boolean): void {
  syscall(on ? 'ioctl(TIOCEXCL)' : 'ioctl(TIOCNXCL)', NR_IOCTL, fd, on ? IOC.TIOCEXCL : IOC.TIOCNXCL, 0);
}

/** struct termios2 of the terminal (of the slave, when fd is a pty master), raw bytes. */
export function getTermios(fd: number): Buffer {
  const t = Buffer.alloc(TERMIOS2_SIZE);
  syscall('ioctl(TCGETS2)', NR_IOCTL, fd, IOC.TCGETS2, t);
  return t;
}

export function setTermios(fd: number, termios: Buffer): void {
  syscall('ioctl(TCSETS2)', NR_IOCTL, fd, IOC.TCSETS2, termios);
}

export interface Winsize { rows: number; cols: number; xpixel: number; ypixel: number }

export function getWinsize(fd: number): Winsize {
  const w = Buffer.alloc(8);
  syscall('ioctl(TIOCGWINSZ)', NR_IOCTL, fd, IOC.TIOCGWINSZ, w);
  return { rows: w.readUInt16LE(0), cols: w.readUInt16LE(2), xpixel: w.readUInt16LE(4), ypixel: w.readUInt16LE(6) };
}

export function setWinsize(fd: number, ws: Winsize): void {
  const w = Buffer.alloc(8);
  [ws.rows, ws.cols, ws.xpixel, ws.ypixel].forEach((v, i) => w.writeUInt16LE(v, i * 2));
  syscall('ioctl(TIOCSWINSZ)', NR_IOCTL, fd, IOC.TIOCSWINSZ, w);
}

/** The foreground process group of fd's terminal (fd must be this process's controlling terminal). */
export const foregroundGroup = (fd: number) => ioctlInt(fd, 'TIOCGPGRP');

const SIGTTOU = 22;
const SIG_IGN = 1n;

/**
 * tcsetpgrp on this process's controlling terminal. SIGTTOU is ignored for the call only: a
 * process outside the foreground group would otherwise be stopped by it.
 */
export function setForegroundGroup(fd: number, pgid: number): void {
  const ignore = Buffer.alloc(32); // struct kernel_sigaction: handler, flags, restorer, mask
  ignore.writeBigUInt64LE(SIG_IGN, 0);
  const old = Buffer.alloc(32);
  syscall('rt_sigaction(SIGTTOU)', NR_RT_SIGACTION, SIGTTOU, ignore, old, 8);
  try {
    ioctlSetInt(fd, 'TIOCSPGRP', pgid);
  } finally {
    trySyscall(NR_RT_SIGACTION, SIGTTOU, old, 0, 8);
  }
}
