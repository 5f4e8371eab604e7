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
