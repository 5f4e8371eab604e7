// Restore: a fresh process reshaped from outside, by remote syscalls, until it is the dumped
// one, then let go. The order follows DESIGN §5: create with the original PID, take over the
// address space, memory, files, then signals, timers, limits, and credentials last.
import fs from 'node:fs';
import { hostArch } from '../sys/arch/index.js';
import { ProcMem } from '../sys/memory.js';
import { readMaps, readStat, type MapEntry } from '../sys/proc.js';
import * as pt from '../sys/ptrace.js';
import { describe, findSyscallInsn, RemoteScratch, RemoteThread } from '../sys/remote.js';
import { spawnStub } from '../sys/stub.js';
import { ImageReader } from '../image/index.js';
import { parseHex } from '../image/hex.js';
import { restoreCreds } from './creds.js';
import type { CoreRecord, FdsImageRecord, MmImageRecord } from './dump.js';
import { restoreFds } from './files/index.js';
import { restoreFs } from './fs.js';
import { restoreLimits } from './limits.js';
import { finalProtections, mapVmas, onceWritable, restorePages } from './memory.js';
import { moveVdso, setMm, vdsoMismatch, vdsoParts } from './mm.js';
import { restoreProcessAttributes } from './process.js';
import { queueSharedSignals, restoreSigactions } from './signals.js';
import { createThread, queueThreadSignals, restoreThreadState, setFinalRegisters } from './threads.js';
import { restoreTimers } from './timers.js';

const arch = hostArch();
const PAGE = BigInt(arch.pageSize);

export class RestoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RestoreError';
  }
}

export interface RestoreOptions {
  dir: string;
  signal?: AbortSignal;
  progress?: (done: number, total: number) => void;
  warn?: (message: string) => void;
}

export interface LoadedImage {
  reader: ImageReader;
  pid: number;
  core: CoreRecord;
  mm: MmImageRecord;
  fds: FdsImageRecord;
}

/** Reads and checks the whole image before anything is touched. */
export async function loadImage(dir: string): Promise<LoadedImage> {
  const reader = await ImageReader.open(dir);
  const m = reader.manifest;
  if (m.arch !== arch.name) throw new RestoreError(`image is for ${m.arch}, this machine is ${arch.name}`);
  if (m.page_size !== arch.pageSize) throw new RestoreError(`image has page size ${m.page_size}, this machine ${arch.pageSize}`);
  await reader.verify();
  const pid = m.root_pid;
  const core = await reader.record<CoreRecord>('core', pid);
  const mm = await reader.record<MmImageRecord>('mm', pid);
  const fds = await reader.record<FdsImageRecord>('fds', pid);
  for (const v of mm.vmas) {
    if (v.kind !== 'file') continue;
    const f = v.file!;
    let st: fs.BigIntStats;
    try {
      st = fs.statSync(f.path, { bigint: true });
    } catch {
      throw new RestoreError(`file ${f.path}, mapped at ${v.start}, is missing`);
    }
    if (Number(st.size) !== f.size || st.mtimeNs.toString() !== f.mtime_ns) {
      throw new RestoreError(`file ${f.path}, mapped at ${v.start}, changed since the dump (size or mtime differ)`);
    }
  }
  if (!fs.existsSync(mm.exe)) throw new RestoreError(`executable ${mm.exe} is missing`);
  const leaderRecord = core.threads.find((t) => t.tid === pid);
  if (!leaderRecord) throw new RestoreError(`image of ${pid} has no thread ${pid} (its leader)`);
  for (const t of core.threads) {
    const holder = t.tid === pid ? null : pidHolder(t.tid);
    if (holder) throw new RestoreError(`thread ${t.tid}: ${holder}`);
  }
  return { reader, pid, core, mm, fds };
}

/** Why a PID cannot be had, or null when it is free. */
export function pidHolder(pid: number): string | null {
  if (!fs.existsSync(`/proc/${pid}`)) return null;
  try {
    const st = readStat(pid);
    if (st.state === 'Z') return `PID ${pid} is a zombie of PPID ${st.ppid}`;
    return `PID ${pid} is in use by ${st.comm} (PPID ${st.ppid})`;
  } catch {
    return null; // it went away while we looked
  }
}

const CLONE_PARENT = 0x8000;
const CLONE_ARGS_SIZE = 88;
const PROT_RW = 3;
const PROT_RX = 5;
const MAP_PRIVATE_ANON_FIXED_NOREPLACE = 0x02 | 0x20 | 0x100000;
const AT_FDCWD = -100;
const O_RDONLY_CLOEXEC = 0o2000000;
const RSEQ_FLAG_UNREGISTER = 1;

/** The lowest free range of len bytes at or above 1 MiB that avoids every given range. */
function freeRange(len: bigint, taken: Array<{ start: bigint; end: bigint }>): bigint {
  let at = 0x100000n;
  for (const r of [...taken].sort((a, b) => (a.start < b.start ? -1 : 1))) {
    if (r.end <= at) continue;
    if (r.start >= at + len) break;
    at = (r.end + PAGE - 1n) & ~(PAGE - 1n);
  }
  return at;
}

/** Creates the process with its PID as a child of ckpt; returns it stopped and traced. */
function createProcess(pid: number): void {
  const stub = spawnStub();
  let stubRemote: RemoteThread | undefined;
  try {
    pt.seize(stub, pt.PTRACE_O.TRACESYSGOOD | pt.PTRACE_O.TRACECLONE | pt.PTRACE_O.TRACEFORK | pt.PTRACE_O.EXITKILL);
    pt.interrupt(stub);
    const st = pt.wait(stub)!;
    if (!(st.stopped && st.event === pt.PTRACE_EVENT.STOP)) throw new RestoreError(`restore stub ${stub}: ${describe(st)}`);
    const mem = new ProcMem(stub, true);
    try {
      const vdso = readMaps(stub).find((m) => m.path === '[vdso]');
      const gadget = vdso && findSyscallInsn(mem, vdso.start, vdso.end);
      if (gadget === undefined) throw new RestoreError('this kernel maps no vDSO with a syscall instruction');
      stubRemote = new RemoteThread(stub, gadget);
      const scratch = RemoteScratch.map(stubRemote, mem);
      const setTid = Buffer.alloc(8);
      setTid.writeInt32LE(pid, 0);
      const tidAddr = scratch.put(setTid, CLONE_ARGS_SIZE);
      const args = Buffer.alloc(CLONE_ARGS_SIZE);
      args.writeBigUInt64LE(BigInt(CLONE_PARENT), 0);
      args.writeBigUInt64LE(tidAddr, 64);
      args.writeBigUInt64LE(1n, 72);
      const r = stubRemote.tryCall('clone3', scratch.put(args, 0), CLONE_ARGS_SIZE);
      if (r < 0n) {
        const holder = pidHolder(pid);
        throw new RestoreError(holder ?? `cannot create process ${pid}: clone3 failed with errno ${-r}`);
      }
      const child = pt.wait(pid)!;
      if (!(child.stopped && child.event === pt.PTRACE_EVENT.STOP)) {
        throw new RestoreError(`new process ${pid}: ${describe(child)}`);
      }
    } finally {
      mem.close();
    }
  } finally {
    try { process.kill(stub, 'SIGKILL'); } catch { /* gone */ }
    pt.tryWait(stub);
  }
}

export async function restoreProcess(opts: RestoreOptions): Promise<{ pid: number }> {
  const warn = opts.warn ?? (() => {});
  const img = await loadImage(opts.dir);
  const { pid, core, mm } = img;
  const holder = pidHolder(pid);
  if (holder) throw new RestoreError(holder);
  opts.signal?.throwIfAborted();

  createProcess(pid);
  const mem = new ProcMem(pid, true);
  try {
    const initialMaps = readMaps(pid);
    const vdso = initialMaps.find((m) => m.path === '[vdso]');
    const vdsoGadget = vdso && findSyscallInsn(mem, vdso.start, vdso.end);
    if (vdsoGadget === undefined) throw new RestoreError('this kernel maps no vDSO with a syscall instruction');
    const remote = new RemoteThread(pid, vdsoGadget);
    const rseq = pt.getRseqConfiguration(pid);
    if (rseq.ptr !== 0n) remote.call('rseq', rseq.ptr, rseq.size, RSEQ_FLAG_UNREGISTER, rseq.sig);
    remote.call('close_range', 0, 0xffffffff, 0);

    // Trampoline: a code page with a syscall instruction and a scratch page, where the image
    // has nothing.
    const imageRanges = mm.vmas.map((v) => ({ start: parseHex(v.start), end: parseHex(v.end) }));
    const taken = () => [...imageRanges, ...readMaps(pid)];
    const trampoline = freeRange(2n * PAGE, taken());
    remote.call('mmap', trampoline, 2n * PAGE, PROT_RW, MAP_PRIVATE_ANON_FIXED_NOREPLACE, -1, 0);
    mem.write(trampoline, arch.trampolineCode);
    remote.call('mprotect', trampoline, PAGE, PROT_RX);
    remote.gadget = trampoline;
    const scratch = RemoteScratch.at(remote, mem, trampoline + PAGE, arch.pageSize);
    const put = (data: Buffer) => scratch.put(data);

    // Everything the stub had goes, except the trampoline and the kernel's vDSO trio.
    const keep = (m: MapEntry) => (m.start >= trampoline && m.end <= trampoline + 2n * PAGE) || m.path === '[vsyscall]'
      || vdsoParts(initialMaps).some((p) => p.start === m.start);
    for (const m of readMaps(pid)) if (!keep(m)) remote.call('munmap', m.start, m.end - m.start);
    if (mm.vdso) {
      const why = vdsoMismatch(mm.vdso, readMaps(pid), mem);
      if (why) throw new RestoreError(`cannot restore on this kernel: ${why}`);
      moveVdso(remote, mm.vdso, readMaps(pid), (len) => freeRange(len, taken()));
    }

    const pages = await img.reader.pages(pid);
    const writableFirst = onceWritable(mm.vmas, pages.entries);
    mapVmas(remote, mm.vmas, put, writableFirst);
    await restorePages(remote, mm.vmas, pages, writableFirst, opts.progress ?? (() => {}));
    finalProtections(remote, mm.vmas, writableFirst);
    opts.signal?.throwIfAborted();

    const exeFd = Number(remote.call('openat', AT_FDCWD, put(Buffer.from(`${mm.exe}\0`)), O_RDONLY_CLOEXEC, 0));
    setMm(remote, scratch, mm, exeFd);
    remote.call('close', exeFd);

    await restoreFds({ remote, scratch, blob: (name) => img.reader.blob(name) }, img.fds.fds);
    restoreFs(remote, scratch, core.fs);
    restoreSigactions(remote, scratch, core.signals);
    restoreTimers(remote, scratch, core.timers);
    restoreLimits(pid, remote, scratch, core.rlimits, warn);
    restoreProcessAttributes(remote, scratch, core.process);
    // Threads share the mm, files and signal handlers set up so far; each gets its own state.
    const threads = core.threads.map((rec) => ({
      rec, remote: rec.tid === pid ? remote : createThread(remote, scratch, rec.tid),
    }));
    for (const t of threads) restoreThreadState(t.remote, scratch, t.rec);
    queueSharedSignals(remote, scratch, pid, core.signals);
    for (const t of threads) queueThreadSignals(remote, scratch, pid, t.rec);
    for (const t of threads) restoreCreds(pid, t.remote, scratch, core.creds);

    // Last syscall: the trampoline goes; every thread stays stopped at a syscall's exit until
    // it gets its own registers back (none of them points into the trampoline any more).
    remote.call('munmap', trampoline, 2n * PAGE);
    for (const t of threads) {
      setFinalRegisters(t.rec.tid, t.rec, await img.reader.blob(t.rec.xstate));
      pt.setSigmask(t.rec.tid, parseHex(t.rec.blocked));
    }
    for (const t of threads) pt.detach(t.rec.tid);
    return { pid };
  } catch (e) {
    // Nothing half-built survives a failed restore.
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    pt.tryWait(pid);
    if (e instanceof RestoreError) throw e;
    throw new RestoreError(`restore of ${pid} failed: ${(e as Error).message}`, { cause: e });
  } finally {
    mem.close();
  }
}

/**
 * Waits (without blocking the event loop) for a restored process, which is ckpt's child, to end;
 * returns its exit code, or 128 + the signal that killed it.
 */
export async function waitForExit(pid: number, signal?: AbortSignal): Promise<number> {
  for (;;) {
    const st = pt.tryWait(pid, true);
    if (typeof st !== 'number') {
      if (st.exited) return st.exitCode!;
      if (st.signaled) return 128 + st.termSignal!;
      continue;
    }
    if (st < 0) throw new RestoreError(`cannot wait for ${pid}: errno ${-st}`);
    if (signal?.aborted) throw signal.reason;
    await new Promise((r) => setTimeout(r, 20));
  }
}
