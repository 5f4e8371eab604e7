// Reading and writing another process's memory: process_vm_readv/writev in large iovec batches,
// and /proc/PID/mem where a mapping's protections forbid the former.
import fs from 'node:fs';
import { addressOf, syscall } from './libc.js';

const NR_PROCESS_VM_READV = 310;
const NR_PROCESS_VM_WRITEV = 311;
/** The kernel's IOV_MAX: at most this many remote ranges per call. */
export const IOV_MAX = 1024;

export interface RemoteRange { addr: bigint; len: number }

function iovecs(ranges: readonly RemoteRange[]): Buffer {
  const iov = Buffer.alloc(ranges.length * 16);
  ranges.forEach((r, i) => {
    iov.writeBigUInt64LE(r.addr, i * 16);
    iov.writeBigUInt64LE(BigInt(r.len), i * 16 + 8);
  });
  return iov;
}

function localIovec(buf: Buffer, offset: number, len: number): Buffer {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(buf) + BigInt(offset), 0);
  iov.writeBigUInt64LE(BigInt(len), 8);
  return iov;
}

function transfer(nr: number, what: string, pid: number, buf: Buffer, offset: number,
  ranges: readonly RemoteRange[]): number {
  let done = 0;
  for (let i = 0; i < ranges.length; i += IOV_MAX) {
    const part = ranges.slice(i, i + IOV_MAX);
    const len = part.reduce((s, r) => s + r.len, 0);
    const n = syscall(`${what}(${pid})`, nr, pid, localIovec(buf, offset + done, len), 1,
      iovecs(part), part.length, 0);
    done += n;
    if (n < len) break; // partial: the caller falls back for what is left
  }
  return done;
}

/** Reads the ranges back to back into buf at offset; returns bytes read (short on an unreadable page). */
export function readRanges(pid: number, buf: Buffer, offset: number, ranges: readonly RemoteRange[]): number {
  return transfer(NR_PROCESS_VM_READV, 'process_vm_readv', pid, buf, offset, ranges);
}

/** Writes buf (from offset) into the ranges back to back; returns bytes written. */
export function writeRanges(pid: number, buf: Buffer, offset: number, ranges: readonly RemoteRange[]): number {
  return transfer(NR_PROCESS_VM_WRITEV, 'process_vm_writev', pid, buf, offset, ranges);
}

/**
 * /proc/PID/mem: reaches pages whatever their protections (the kernel uses FOLL_FORCE for a
 * tracer), at a lower speed than process_vm_readv.
 */
export class ProcMem {
  private readonly fd: number;
  constructor(readonly pid: number, writable = false) {
    this.fd = fs.openSync(`/proc/${pid}/mem`, writable ? 'r+' : 'r');
  }
  read(addr: bigint, buf: Buffer, offset = 0, len = buf.length - offset): void {
    let done = 0;
    while (done < len) {
      const n = fs.readSync(this.fd, buf, offset + done, len - done, Number(addr) + done);
      if (n <= 0) throw new Error(`cannot read memory of ${this.pid} at 0x${(addr + BigInt(done)).toString(16)}`);
      done += n;
    }
  }
  write(addr: bigint, buf: Buffer, offset = 0, len = buf.length - offset): void {
    let done = 0;
    while (done < len) {
      const n = fs.writeSync(this.fd, buf, offset + done, len - done, Number(addr) + done);
      if (n <= 0) throw new Error(`cannot write memory of ${this.pid} at 0x${(addr + BigInt(done)).toString(16)}`);
      done += n;
    }
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}
