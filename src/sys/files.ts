// File helpers Node's fs does not offer.
import { syscall, trySyscall, SysError } from './libc.js';

const NR_LSEEK = 8;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;

/** The [start, end) byte ranges of fd within [from, to) that hold data (holes skipped). */
export function dataExtents(fd: number, from: bigint, to: bigint): Array<[bigint, bigint]> {
  const out: Array<[bigint, bigint]> = [];
  let pos = from;
  while (pos < to) {
    const data = trySyscall(NR_LSEEK, fd, pos, SEEK_DATA);
    if (data === -ENXIO) break; // no data after pos
    if (data < 0) throw new SysError('lseek(SEEK_DATA)', -data);
    if (BigInt(data) >= to) break;
    const hole = trySyscall(NR_LSEEK, fd, data, SEEK_HOLE);
    if (hole < 0) throw new SysError('lseek(SEEK_HOLE)', -hole);
    const end = BigInt(hole) < to ? BigInt(hole) : to;
    out.push([BigInt(data), end]);
    pos = end;
  }
  return out;
}

const NR = { lseek: 8, pipe2: 293, tee: 276, fcntl: 72, close: 3 };
const SEEK_SET = 0;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_SETPIPE_SZ = 1031;
export const F_GETPIPE_SZ = 1032;
const SPLICE_F_NONBLOCK = 2;
const O_CLOEXEC = 0o2000000;
const EAGAIN = 11;

export function lseek(fd: number, pos: bigint): void {
  syscall('lseek', NR.lseek, fd, pos, SEEK_SET);
}

export function fcntl(fd: number, cmd: number, arg = 0): number {
  return syscall(`fcntl(${cmd})`, NR.fcntl, fd, cmd, arg);
}

/** A new pipe in this process: [read end, write end], close-on-exec. */
export function pipe(): [number, number] {
  const fds = Buffer.alloc(8);
  syscall('pipe2', NR.pipe2, fds, O_CLOEXEC);
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

/** Copies (without consuming) up to len bytes queued in pipe `from` into pipe `to`; 0 when empty. */
export function tee(from: number, to: number, len: number): number {
  const r = trySyscall(NR.tee, from, to, len, SPLICE_F_NONBLOCK);
  if (r === -EAGAIN) return 0;
  if (r < 0) throw new SysError('tee', -r);
  return r;
}

export function closeFd(fd: number): void {
  trySyscall(NR.close, fd);
}

const NR_EVENTFD2 = 290;
const NR_SIGNALFD4 = 289;
const NR_TIMERFD_CREATE = 283;
const NR_TIMERFD_SETTIME = 286;
const NR_IOCTL = 16;
const TFD_IOC_SET_TICKS = 0x40085400;

/** A new eventfd in this process (flags: EFD_*; close-on-exec added). */
export function eventfd(flags: number): number {
  return syscall('eventfd2', NR_EVENTFD2, 0, flags | O_CLOEXEC);
}

/** A new signalfd for the signals of `mask` (flags: SFD_*; close-on-exec added). */
export function signalfd(mask: bigint, flags: number): number {
  const m = Buffer.alloc(8);
  m.writeBigUInt64LE(mask, 0);
  return syscall('signalfd4', NR_SIGNALFD4, -1, m, 8, flags | O_CLOEXEC);
}

/** A new timerfd on clock `clock` (flags: TFD_*; close-on-exec added). */
export function timerfdCreate(clock: number, flags: number): number {
  return syscall('timerfd_create', NR_TIMERFD_CREATE, clock, flags | O_CLOEXEC);
}

/** Arms a timerfd: first expiry after value, then every interval ([sec, nsec] each). */
export function timerfdSettime(fd: number, interval: [number, number], value: [number, number]): void {
  const spec = Buffer.alloc(32);
  [interval[0], interval[1], value[0], value[1]].forEach((v, i) => spec.writeBigInt64LE(BigInt(v), i * 8));
  syscall('timerfd_settime', NR_TIMERFD_SETTIME, fd, 0, spec, 0);
}

/** Sets the expirations a timerfd has counted and not yet been read (CONFIG_CHECKPOINT_RESTORE). */
export function timerfdSetTicks(fd: number, ticks: bigint): void {
  const t = Buffer.alloc(8);
  t.writeBigUInt64LE(ticks, 0);
  syscall('ioctl(TFD_IOC_SET_TICKS)', NR_IOCTL, fd, TFD_IOC_SET_TICKS, t);
}

const NR_MEMFD_CREATE = 319;
const NR_FTRUNCATE = 77;
export const F_ADD_SEALS = 1033;
export const F_GET_SEALS = 1034;
const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;

/** A new memfd in this process, sealable, close-on-exec. */
export function memfdCreate(name: string): number {
  return syscall('memfd_create', NR_MEMFD_CREATE, Buffer.from(`${name}\0`), MFD_CLOEXEC | MFD_ALLOW_SEALING);
}

export function ftruncate(fd: number, size: number): void {
  syscall('ftruncate', NR_FTRUNCATE, fd, size);
}
