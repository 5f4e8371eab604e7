// Signal dispositions and the process-wide queue of pending signals.
import * as pt from '../sys/ptrace.js';
import type { RemoteScratch, RemoteThread } from '../sys/remote.js';
import { hex, parseHex } from '../image/hex.js';

const SIGKILL = 9;
const SIGSTOP = 19;
const NSIG = 64;
/** struct kernel_sigaction on x86_64: handler, flags, restorer, mask (8 bytes each). */
const SIGACTION_SIZE = 32;

export interface SigactionRecord { sig: number; handler: string; flags: string; restorer: string; mask: string }

export interface SignalsRecord {
  /** Dispositions other than the default (SIG_DFL, no flags, empty mask). */
  actions: SigactionRecord[];
  /** siginfo of each signal queued to the whole process, base64. */
  shared_pending: string[];
}

export function collectSignals(leader: RemoteThread, scratch: RemoteScratch): SignalsRecord {
  const actions: SigactionRecord[] = [];
  for (let sig = 1; sig <= NSIG; sig++) {
    if (sig === SIGKILL || sig === SIGSTOP) continue;
    leader.call('rt_sigaction', sig, 0, scratch.addr, 8);
    const a = scratch.get(0, SIGACTION_SIZE);
    const [handler, flags, restorer, mask] = [0, 8, 16, 24].map((o) => a.readBigUInt64LE(o));
    if (handler === 0n && flags === 0n && mask === 0n) continue;
    actions.push({ sig, handler: hex(handler), flags: hex(flags), restorer: hex(restorer), mask: hex(mask) });
  }
  return { actions, shared_pending: pt.peekSiginfo(leader.tid, true).map((b) => b.toString('base64')) };
}

export function restoreSigactions(leader: RemoteThread, scratch: RemoteScratch, rec: SignalsRecord): void {
  for (const a of rec.actions) {
    const b = Buffer.alloc(SIGACTION_SIZE);
    [a.handler, a.flags, a.restorer, a.mask].forEach((v, i) => b.writeBigUInt64LE(parseHex(v), i * 8));
    leader.call('rt_sigaction', a.sig, scratch.put(b), 0, 8);
  }
}

/** Queues the process-wide pending signals again (the process queues them to itself). */
export function queueSharedSignals(leader: RemoteThread, scratch: RemoteScratch, tgid: number, rec: SignalsRecord): void {
  for (const info of rec.shared_pending) {
    const si = Buffer.from(info, 'base64');
    leader.call('rt_sigqueueinfo', tgid, si.readInt32LE(0), scratch.put(si));
  }
}
