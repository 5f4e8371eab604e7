// ptrace(2) and wait4(2), as used to freeze threads and drive them from outside.
import { hostArch, type Regs } from './arch/index.js';
import { addressOf as addrOfBuffer, syscall, trySyscall } from './libc.js';

const arch = hostArch();
const NR_PTRACE = 101;
const NR_WAIT4 = 61;

export const PTRACE = {
  PEEKDATA: 2, CONT: 7, KILL: 8, SINGLESTEP: 9, GETREGS: 12, SETREGS: 13, DETACH: 17, SYSCALL: 24,
  SETOPTIONS: 0x4200, GETEVENTMSG: 0x4201, GETSIGINFO: 0x4202, SETSIGINFO: 0x4203,
  GETREGSET: 0x4204, SETREGSET: 0x4205, SEIZE: 0x4206, INTERRUPT: 0x4207, LISTEN: 0x4208,
  PEEKSIGINFO: 0x4209, GETSIGMASK: 0x420a, SETSIGMASK: 0x420b, GET_RSEQ_CONFIGURATION: 0x420f,
} as const;

export const PTRACE_O = {
  TRACESYSGOOD: 1, TRACEFORK: 2, TRACEVFORK: 4, TRACECLONE: 8, TRACEEXEC: 0x10,
  TRACEEXIT: 0x40, EXITKILL: 0x100000,
} as const;

export const PTRACE_EVENT = { FORK: 1, VFORK: 2, CLONE: 3, EXEC: 4, EXIT: 6, STOP: 128 } as const;

const WNOHANG = 1;
const WALL = 0x40000000;
const SIGTRAP = 5;

function ptrace(what: string, req: number, tid: number, addr: number | bigint | Buffer = 0,
  data: number | bigint | Buffer = 0): number {
  return syscall(`ptrace(${what}, ${tid})`, NR_PTRACE, req, tid, addr, data);
}

/** A wait status, decoded. */
export interface WaitStatus {
  pid: number;
  raw: number;
  exited: boolean;
  exitCode?: number;
  signaled: boolean;
  termSignal?: number;
  stopped: boolean;
  stopSignal?: number;
  /** PTRACE_EVENT_* of a ptrace event stop (0 when none). */
  event: number;
  /** A syscall-enter/exit stop (PTRACE_O_TRACESYSGOOD). */
  syscallStop: boolean;
}

export function decodeStatus(pid: number, raw: number): WaitStatus {
  const low = raw & 0x7f;
  const stopped = (raw & 0xff) === 0x7f;
  const stopSig = (raw >> 8) & 0xff;
  return {
    pid, raw,
    exited: low === 0,
    exitCode: low === 0 ? (raw >> 8) & 0xff : undefined,
    signaled: !stopped && low !== 0,
    termSignal: !stopped && low !== 0 ? low : undefined,
    stopped,
    stopSignal: stopped ? stopSig & 0x7f : undefined,
    event: stopped ? (raw >> 16) & 0xff : 0,
    syscallStop: stopped && stopSig === (SIGTRAP | 0x80),
  };
}

const statusBuf = Buffer.alloc(4);

/** wait4 for one thread or process (any kind of child or tracee). null with noHang and nothing to report. */
export function wait(pid: number, opts: { noHang?: boolean } = {}): WaitStatus | null {
  const r = syscall(`wait4(${pid})`, NR_WAIT4, pid, statusBuf, WALL | (opts.noHang ? WNOHANG : 0), 0);
  if (r === 0) return null;
  return decodeStatus(r, statusBuf.readInt32LE(0));
}

/** Like wait, but -errno instead of an exception (ECHILD means: nothing of ours to wait for). */
export function tryWait(pid: number, noHang = false): WaitStatus | number {
  const r = trySyscall(NR_WAIT4, pid, statusBuf, WALL | (noHang ? WNOHANG : 0), 0);
  if (r <= 0) return r;
  return decodeStatus(r, statusBuf.readInt32LE(0));
}

const NR_WAITID = 247;
const P_PID = 1;
const WEXITED = 4;
const WNOWAIT = 0x01000000;

/**
 * Waits until process pid has ended, without reaping it: its parent (for a child of ours that
 * Node's child_process started, libuv) still collects its status.
 */
export function waitEndedNoReap(pid: number): void {
  const info = Buffer.alloc(128);
  trySyscall(NR_WAITID, P_PID, pid, info, WEXITED | WNOWAIT | WALL, 0);
}

export function seize(tid: number, options: number): void {
  ptrace('SEIZE', PTRACE.SEIZE, tid, 0, options);
}
export function interrupt(tid: number): void {
  ptrace('INTERRUPT', PTRACE.INTERRUPT, tid);
}
export function cont(tid: number, sig = 0): void {
  ptrace('CONT', PTRACE.CONT, tid, 0, sig);
}
export function resumeToSyscall(tid: number): void {
  ptrace('SYSCALL', PTRACE.SYSCALL, tid, 0, 0);
}
export function detach(tid: number, sig = 0): void {
  ptrace('DETACH', PTRACE.DETACH, tid, 0, sig);
}
export function tryDetach(tid: number): number {
  return trySyscall(NR_PTRACE, PTRACE.DETACH, tid, 0, 0);
}
export function setOptions(tid: number, options: number): void {
  ptrace('SETOPTIONS', PTRACE.SETOPTIONS, tid, 0, options);
}

const msgBuf = Buffer.alloc(8);
export function getEventMsg(tid: number): bigint {
  ptrace('GETEVENTMSG', PTRACE.GETEVENTMSG, tid, 0, msgBuf);
  return msgBuf.readBigUInt64LE(0);
}

const regsBuf = Buffer.alloc(arch.regNames.length * 8);
export function getRegs(tid: number): Regs {
  ptrace('GETREGS', PTRACE.GETREGS, tid, 0, regsBuf);
  return arch.regsFromBuffer(regsBuf);
}
export function setRegs(tid: number, regs: Regs): void {
  ptrace('SETREGS', PTRACE.SETREGS, tid, 0, arch.regsToBuffer(regs));
}

/** PTRACE_GETREGSET of one note type; returns exactly the bytes the kernel filled in. */
export function getRegset(tid: number, note: number, maxSize = 16384): Buffer {
  const data = Buffer.alloc(maxSize);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(BigInt(addrOfBuffer(data)), 0);
  iov.writeBigUInt64LE(BigInt(maxSize), 8);
  ptrace(`GETREGSET 0x${note.toString(16)}`, PTRACE.GETREGSET, tid, note, iov);
  return Buffer.from(data.subarray(0, Number(iov.readBigUInt64LE(8))));
}
export function setRegset(tid: number, note: number, data: Buffer): void {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(BigInt(addrOfBuffer(data)), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  ptrace(`SETREGSET 0x${note.toString(16)}`, PTRACE.SETREGSET, tid, note, iov);
}

const maskBuf = Buffer.alloc(8);
export function getSigmask(tid: number): bigint {
  ptrace('GETSIGMASK', PTRACE.GETSIGMASK, tid, 8, maskBuf);
  return maskBuf.readBigUInt64LE(0);
}
export function setSigmask(tid: number, mask: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(mask, 0);
  ptrace('SETSIGMASK', PTRACE.SETSIGMASK, tid, 8, b);
}

export interface RseqConfig { ptr: bigint; size: number; sig: number; flags: number }
export function getRseqConfiguration(tid: number): RseqConfig {
  const b = Buffer.alloc(24);
  ptrace('GET_RSEQ_CONFIGURATION', PTRACE.GET_RSEQ_CONFIGURATION, tid, 24, b);
  return { ptr: b.readBigUInt64LE(0), size: b.readUInt32LE(8), sig: b.readUInt32LE(12), flags: b.readUInt32LE(16) };
}

const SIGINFO_SIZE = 128;
/**
 * Queued signals with their full siginfo (128 bytes each): of the thread, or with `shared` of the
 * whole process. PTRACE_PEEKSIGINFO reads without dequeuing.
 */
export function peekSiginfo(tid: number, shared: boolean): Buffer[] {
  const out: Buffer[] = [];
  const args = Buffer.alloc(16); // { u64 off; u32 flags; s32 nr }
  const batch = 32;
  for (;;) {
    const buf = Buffer.alloc(SIGINFO_SIZE * batch);
    args.writeBigUInt64LE(BigInt(out.length), 0);
    args.writeUInt32LE(shared ? 1 : 0, 8);
    args.writeInt32LE(batch, 12);
    const n = ptrace('PEEKSIGINFO', PTRACE.PEEKSIGINFO, tid, args, buf);
    for (let i = 0; i < n; i++) out.push(Buffer.from(buf.subarray(i * SIGINFO_SIZE, (i + 1) * SIGINFO_SIZE)));
    if (n < batch) return out;
  }
}

