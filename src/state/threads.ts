// Threads: registers, extended FPU state, signal mask, queued signals, alternate signal stack,
// rseq area, robust futex list and clear-child-tid address. Dump and restore side by side.
import { hostArch, type Regs } from '../sys/arch/index.js';
import * as pt from '../sys/ptrace.js';
import { RemoteThread, type RemoteScratch } from '../sys/remote.js';
import { CLONE, remoteClone3 } from '../sys/clone.js';
import { syscall } from '../sys/libc.js';
import { hex, parseHex } from '../image/hex.js';

const arch = hostArch();
const NR_GET_ROBUST_LIST = 274;
const PR_GET_TID_ADDRESS = 40;
const SS_ONSTACK = 1;
const SS_DISABLE = 2;

export interface SigaltstackRecord { sp: string; flags: number; size: string }

export interface ThreadRecord {
  tid: number;
  regs: Record<string, string>;
  /** Image blob with the NT_X86_XSTATE (or the arch's) extended register set. */
  xstate: string;
  blocked: string;
  /** siginfo of each signal queued to this thread, base64 (128 bytes each). */
  pending: string[];
  sigaltstack: SigaltstackRecord;
  rseq: { ptr: string; size: number; sig: number } | null;
  robust_list: { head: string; len: number };
  tid_address: string;
}

export const xstateBlobName = (tid: number) => `xstate-${tid}.img`;

/**
 * Reads the state of one frozen thread. `remote` is this thread driven by ckpt (for what only
 * the thread itself can tell); `scratch` an area in its process for the results.
 */
export function collectThread(remote: RemoteThread, scratch: RemoteScratch): { record: ThreadRecord; xstate: Buffer } {
  const tid = remote.tid;
  const xstate = pt.getRegset(tid, arch.extendedStateNote);

  // sigaltstack(NULL, &old) and prctl(PR_GET_TID_ADDRESS, &addr) fill in structures.
  remote.call('sigaltstack', 0, scratch.addr);
  const ss = scratch.get(0, 24);
  remote.call('prctl', PR_GET_TID_ADDRESS, scratch.addr);
  const tidAddress = scratch.get(0, 8).readBigUInt64LE(0);

  const robust = Buffer.alloc(16);
  syscall(`get_robust_list(${tid})`, NR_GET_ROBUST_LIST, tid, robust, robust.subarray(8));

  const rseq = pt.getRseqConfiguration(tid);
  const regs: Record<string, string> = {};
  for (const [name, value] of Object.entries(remote.savedRegs)) regs[name] = hex(value);
  return {
    xstate,
    record: {
      tid,
      regs,
      xstate: xstateBlobName(tid),
      blocked: hex(remote.savedMask),
      pending: pt.peekSiginfo(tid, false).map((b) => b.toString('base64')),
      sigaltstack: { sp: hex(ss.readBigUInt64LE(0)), flags: ss.readInt32LE(8), size: hex(ss.readBigUInt64LE(16)) },
      rseq: rseq.ptr === 0n ? null : { ptr: hex(rseq.ptr), size: rseq.size, sig: rseq.sig },
      robust_list: { head: hex(robust.readBigUInt64LE(0)), len: Number(robust.readBigUInt64LE(8)) },
      tid_address: hex(tidAddress),
    },
  };
}

export function recordRegs(record: ThreadRecord): Regs {
  const regs: Regs = {};
  for (const name of arch.regNames) {
    const v = record.regs[name];
    if (v === undefined) throw new Error(`thread ${record.tid}: register ${name} missing from image`);
    regs[name] = parseHex(v);
  }
  return regs;
}

/**
 * Gives a restored thread its per-thread kernel state (all but registers and signal mask, which
 * are set last, when the thread is let go).
 */
export function restoreThreadState(remote: RemoteThread, scratch: RemoteScratch, rec: ThreadRecord): void {
  const ss = Buffer.alloc(24);
  ss.writeBigUInt64LE(parseHex(rec.sigaltstack.sp), 0);
  // ON_STACK is a state, not a setting: the thread is not on that stack while ckpt sets it.
  ss.writeInt32LE(rec.sigaltstack.flags & ~SS_ONSTACK, 8);
  ss.writeBigUInt64LE(parseHex(rec.sigaltstack.size), 16);
  if (!(rec.sigaltstack.flags & SS_DISABLE)) remote.call('sigaltstack', scratch.put(ss), 0);

  remote.call('set_robust_list', parseHex(rec.robust_list.head), rec.robust_list.len);
  remote.call('set_tid_address', parseHex(rec.tid_address));
  if (rec.rseq) remote.call('rseq', parseHex(rec.rseq.ptr), rec.rseq.size, 0, rec.rseq.sig);
}

/**
 * Puts thread-directed signals back on the thread's own queue. Queued from the thread-group
 * leader: the kernel lets a process queue any siginfo to itself, addressed by its tgid.
 */
export function queueThreadSignals(leader: RemoteThread, scratch: RemoteScratch, tgid: number, rec: ThreadRecord): void {
  for (const info of rec.pending) {
    const si = Buffer.from(info, 'base64');
    leader.call('rt_tgsigqueueinfo', tgid, rec.tid, si.readInt32LE(0), scratch.put(si));
  }
}

/** Registers and extended state a restored thread continues with. */
export function setFinalRegisters(tid: number, rec: ThreadRecord, xstate: Buffer): void {
  pt.setRegset(tid, arch.extendedStateNote, xstate);
  pt.setRegs(tid, arch.restartRegs(recordRegs(rec)));
}

/**
 * Creates thread `tid` in the process of `leader` (remote clone3 with CLONE_THREAD and set_tid).
 * It is born traced and stopped, before running any instruction; its registers are set later.
 */
export function createThread(leader: RemoteThread, scratch: RemoteScratch, tid: number): RemoteThread {
  const flags = CLONE.VM | CLONE.FS | CLONE.FILES | CLONE.SIGHAND | CLONE.THREAD | CLONE.SYSVSEM;
  const got = Number(remoteClone3(leader, scratch, flags, 0, tid));
  if (got !== tid) throw new Error(got < 0 ? `cannot create thread ${tid}: clone3 failed with errno ${-got}` : `thread ${tid} came back as ${got}`);
  const st = pt.wait(tid)!;
  if (!(st.stopped && st.event === pt.PTRACE_EVENT.STOP)) throw new Error(`new thread ${tid} did not stop as expected`);
  return new RemoteThread(tid, leader.gadget);
}
