// Restore: a fresh process reshaped from outside, by remote syscalls, until it is the dumped
// one, then let go. The order follows DESIGN §5: create with the original PID, take over the
// address space, memory, files, then signals, timers, limits, and credentials last.
import fs from 'node:fs';
import { hostArch } from '../sys/arch/index.js';
import { CLONE, remoteClone3 } from '../sys/clone.js';
import { ProcMem } from '../sys/memory.js';
import { readMaps, readStat, type MapEntry } from '../sys/proc.js';
import * as pt from '../sys/ptrace.js';
import { describe, findSyscallInsn, RemoteScratch, RemoteThread } from '../sys/remote.js';
import { spawnStub } from '../sys/stub.js';
import { ImageReader } from '../image/index.js';
import { parseHex } from '../image/hex.js';
import { restoreCreds } from './creds.js';
import type { CoreRecord, FdsImageRecord, FilesImageRecord, MmImageRecord, TreeRecord } from './dump.js';
import { FileOpener, filesUnavailable, installFds, type FileRecord } from './files/index.js';
import { acquireTerminal, makeForeground, setForeground, terminalsUnavailable } from './files/tty.js';
import { restoreFs } from './fs.js';
import { restoreLimits } from './limits.js';
import { finalProtections, mapVmas, onceWritable, restorePages } from './memory.js';
import { moveVdso, setMm, vdsoMismatch, vdsoParts } from './mm.js';
import { restoreProcessAttributes } from './process.js';
import { queueSharedSignals, restoreSigactions } from './signals.js';
import { createThread, queueThreadSignals, restoreThreadState, setFinalRegisters, type ThreadRecord } from './threads.js';
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
  /** A shell job: its terminals outside the tree become ckpt's terminal, its group the foreground one. */
  shellJob?: boolean;
}

export interface ProcessImage {
  pid: number;
  core: CoreRecord;
  mm: MmImageRecord;
  fds: FdsImageRecord;
}

export interface LoadedImage {
  reader: ImageReader;
  root: number;
  tree: TreeRecord;
  files: FilesImageRecord;
  /** Live processes, parents first. */
  processes: ProcessImage[];
}

/** Reads and checks the whole image, and what it needs of this machine, before anything is touched. */
export async function loadImage(dir: string): Promise<LoadedImage> {
  const reader = await ImageReader.open(dir);
  try {
    return await checkImage(reader);
  } catch (e) {
    await reader.close();
    throw e;
  }
}

async function checkImage(reader: ImageReader): Promise<LoadedImage> {
  const m = reader.manifest;
  if (m.arch !== arch.name) throw new RestoreError(`image is for ${m.arch}, this machine is ${arch.name}`);
  if (m.page_size !== arch.pageSize) throw new RestoreError(`image has page size ${m.page_size}, this machine ${arch.pageSize}`);
  await reader.verify();
  const tree = await reader.record<TreeRecord>('tree');
  const files = await reader.record<FilesImageRecord>('files');
  const processes: ProcessImage[] = [];
  for (const p of tree.processes) {
    if (p.zombie) continue;
    const core = await reader.record<CoreRecord>('core', p.pid);
    const mm = await reader.record<MmImageRecord>('mm', p.pid);
    const fds = await reader.record<FdsImageRecord>('fds', p.pid);
    checkFilesHere(mm);
    if (!core.threads.some((t) => t.tid === p.pid)) throw new RestoreError(`image of ${p.pid} has no thread ${p.pid} (its leader)`);
    processes.push({ pid: p.pid, core, mm, fds });
  }
  if (tree.processes[0]?.pid !== tree.root) throw new RestoreError(`tree.json does not start with its root ${tree.root}`);
  return { reader, root: tree.root, tree, files, processes };
}

function checkFilesHere(mm: MmImageRecord): void {
  for (const v of mm.vmas) {
    if (v.kind !== 'file') continue;
    const f = v.file!;
    let st: fs.BigIntStats;
    try {
      st = fs.statSync(f.path, { bigint: true });
    } catch {
      throw new RestoreError(`file ${f.path}, mapped at ${v.start} by ${mm.pid}, is missing`);
    }
    if (Number(st.size) !== f.size || st.mtimeNs.toString() !== f.mtime_ns) {
      throw new RestoreError(`file ${f.path}, mapped at ${v.start} by ${mm.pid}, changed since the dump (size or mtime differ)`);
    }
  }
  if (!fs.existsSync(mm.exe)) throw new RestoreError(`executable ${mm.exe} of ${mm.pid} is missing`);
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

/**
 * Null once pid is free. A zombie whose parent is not ours to wait for (the tree ended by its
 * dump, reparented to init) is given a few seconds to be reaped.
 */
async function pidFree(pid: number): Promise<string | null> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const holder = pidHolder(pid);
    if (!holder || !holder.includes('zombie') || Date.now() > deadline) return holder;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const SIGCHLD = 17;
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

/** clone3 with set_tid run by `parent`: the new process (stopped, traced) gets PID `pid`. */
function cloneWithPid(parent: RemoteThread, scratch: RemoteScratch, pid: number, flags: number): void {
  // With CLONE_PARENT the child gets the caller's exit signal; clone3 wants 0 then.
  const r = remoteClone3(parent, scratch, flags, flags & CLONE.PARENT ? 0 : SIGCHLD, pid);
  if (r < 0n) throw new RestoreError(pidHolder(pid) ?? `cannot create process ${pid}: clone3 failed with errno ${-r}`);
  const child = pt.wait(pid)!;
  if (!(child.stopped && child.event === pt.PTRACE_EVENT.STOP)) throw new RestoreError(`new process ${pid}: ${describe(child)}`);
}

/** Creates the root with its PID as a child of ckpt, from a stub; returns it stopped and traced. */
function createRoot(pid: number): void {
  const stub = spawnStub();
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
      const remote = new RemoteThread(stub, gadget);
      cloneWithPid(remote, RemoteScratch.map(remote, mem), pid, CLONE.PARENT);
    } finally {
      mem.close();
    }
  } finally {
    try { process.kill(stub, 'SIGKILL'); } catch { /* gone */ }
    pt.tryWait(stub);
  }
}

async function checkPidsFree(img: LoadedImage): Promise<void> {
  for (const p of img.tree.processes) {
    const holder = await pidFree(p.pid);
    if (holder) throw new RestoreError(holder);
  }
  for (const p of img.processes) {
    for (const t of p.core.threads) {
      const holder = t.tid === p.pid ? null : pidHolder(t.tid);
      if (holder) throw new RestoreError(`thread ${t.tid} of ${p.pid}: ${holder}`);
    }
  }
}

/** A process of the tree while ckpt builds it. */
interface Building {
  pid: number;
  image?: ProcessImage;
  zombie?: { exit_code: number; comm: string };
  remote: RemoteThread;
  mem: ProcMem;
  scratch: RemoteScratch;
  threads: Array<{ rec: ThreadRecord; remote: RemoteThread }>;
  /** Its descriptor table is its parent's (CLONE_FILES). */
  sharedTable?: boolean;
}


export async function restoreProcess(opts: RestoreOptions): Promise<{ pid: number }> {
  const warn = opts.warn ?? (() => {});
  const img = await loadImage(opts.dir);
  try {
    await checkPidsFree(img);
    const noTerminals = terminalsUnavailable(img.files.files, opts.shellJob ?? false);
    if (noTerminals) throw new RestoreError(noTerminals);
    const unavailable = filesUnavailable(img.files.files);
    if (unavailable) throw new RestoreError(`cannot restore ${img.root}: ${unavailable}`);
    opts.signal?.throwIfAborted();
  } catch (e) {
    await img.reader.close();
    throw e;
  }
  const root = img.root;

  // One trampoline address free in every process's image: children inherit it from parents.
  const imageRanges = img.processes.flatMap((p) => p.mm.vmas.map((v) => ({ start: parseHex(v.start), end: parseHex(v.end) })));
  const built: Building[] = [];
  const opener = new FileOpener(img.files.files, (name) => img.reader.blob(name), warn);
  /** What the restore is doing, for the message when it fails. */
  const stage = { now: 'creating the processes' };
  try {
    // 1. The skeleton: every process with its PID, its parent, session and group.
    for (const p of img.tree.processes) {
      if (p.pid === root) createRoot(p.pid);
      else {
        const parent = built.find((b) => b.pid === p.ppid);
        if (!parent) throw new RestoreError(`process ${p.pid}: its parent ${p.ppid} is not in the image`);
        cloneWithPid(parent.remote, parent.scratch, p.pid, p.files_shared ? CLONE.FILES : 0);
      }
      const b = takeOver(p.pid, imageRanges, built.length === 0, p.files_shared === true);
      b.image = img.processes.find((x) => x.pid === p.pid);
      b.zombie = p.zombie;
      b.sharedTable = p.files_shared === true;
      built.push(b);
      // A session leader starts its session, and takes its terminal, before it has children,
      // who then inherit both.
      if (p.sid === p.pid) {
        b.remote.call('setsid');
        if (p.ctty) acquireTerminal(b.remote, await opener.fdOf(p.ctty.file));
      }
    }
    // A session outside the tree (a shell job's, or a daemon's) is not made again: the tree
    // stays in ckpt's session, and a group outside the tree is the group ckpt put the root in.
    const top = img.tree.processes[0]!;
    const outsideSession = top.sid !== root ? top.sid : undefined;
    const ckptSession = readStat(process.pid).session;
    if (outsideSession !== undefined && !opts.shellJob) {
      warn(`process ${root} was in session ${outsideSession}; restored in ckpt's session ${ckptSession}`);
    }
    const groupInTree = (pgid: number) => img.tree.processes.some((x) => x.pid === pgid);
    for (const p of [...img.tree.processes].sort((a, b) => Number(b.pgid === b.pid) - Number(a.pgid === a.pid))) {
      const b = built.find((x) => x.pid === p.pid)!;
      const sid = Number(b.remote.call('getsid', 0));
      const outside = p.sid === outsideSession;
      if (sid !== (outside ? ckptSession : p.sid)) throw new RestoreError(`process ${p.pid}: cannot restore its session ${p.sid}`);
      if (outside && !groupInTree(p.pgid)) continue;
      if (Number(b.remote.call('getpgid', 0)) !== p.pgid) b.remote.call('setpgid', 0, p.pgid === p.pid ? 0 : p.pgid);
    }
    // Every group exists now: each session leader gives its terminal its foreground group.
    for (const p of img.tree.processes) {
      if (p.ctty?.foreground === undefined) continue;
      const b = built.find((x) => x.pid === p.pid)!;
      setForeground(b.remote, b.scratch, await opener.fdOf(p.ctty.file), p.ctty.foreground);
    }

    // 2. Each live process reshaped into its image.
    const sharedMemory = new Map<string, string>();
    for (const b of built) if (b.image) await reshape(b, b.image, img.reader, opener, img.files.files, sharedMemory, warn, opts, stage);
    opener.checkEpollsFilled();
    opener.removeTemporaries();

    // 3. Let go: every thread gets its registers back; zombies exit with their status.
    stage.now = 'letting the processes go';
    for (const b of built) {
      if (b.zombie) {
        exitAsZombie(b, b.zombie);
        continue;
      }
      // Last syscall: the trampoline goes; every thread stays stopped at a syscall's exit
      // until it gets its own registers back (none points into the trampoline any more).
      b.remote.call('munmap', b.remote.gadget, 2n * PAGE);
      for (const t of b.threads) {
        setFinalRegisters(t.rec.tid, t.rec, await img.reader.blob(t.rec.xstate));
        pt.setSigmask(t.rec.tid, parseHex(t.rec.blocked));
      }
    }
    // A shell job in the foreground at dump is in the foreground of ckpt's terminal again.
    if (opts.shellJob && top.foreground && top.pgid === root) {
      const why = makeForeground(root);
      if (why) warn(`group ${root} not made the foreground group of ckpt's terminal: ${why}`);
    }
    for (const b of [...built].reverse()) {
      for (const t of b.threads) pt.detach(t.rec.tid);
      b.mem.close();
    }
    return { pid: root };
  } catch (e) {
    // Nothing half-built survives a failed restore.
    for (const b of [...built].reverse()) {
      try { process.kill(b.pid, 'SIGKILL'); } catch { /* gone */ }
    }
    for (const b of [...built].reverse()) {
      for (const t of b.threads) if (t.rec.tid !== b.pid) pt.tryWait(t.rec.tid);
      pt.tryWait(b.pid);
      b.mem.close();
    }
    if (e instanceof RestoreError) throw e;
    throw new RestoreError(`restore of ${root} failed while ${stage.now}: ${(e as Error).message}`, { cause: e });
  } finally {
    opener.close();
    await img.reader.close();
  }
}

/**
 * Makes a freshly created (stopped, traced) process ckpt's to drive: no rseq, no descriptors,
 * and the trampoline (code page + scratch page) at the address free in every image. A child
 * inherits its parent's trampoline; the root maps it.
 */
function takeOver(pid: number, imageRanges: Array<{ start: bigint; end: bigint }>, isRoot: boolean,
  sharedTable: boolean): Building {
  const mem = new ProcMem(pid, true);
  const maps = readMaps(pid);
  const vdso = maps.find((m) => m.path === '[vdso]');
  const vdsoGadget = vdso && findSyscallInsn(mem, vdso.start, vdso.end);
  if (vdsoGadget === undefined) throw new RestoreError('this kernel maps no vDSO with a syscall instruction');
  const remote = new RemoteThread(pid, vdsoGadget);
  const rseq = pt.getRseqConfiguration(pid);
  if (rseq.ptr !== 0n) remote.call('rseq', rseq.ptr, rseq.size, RSEQ_FLAG_UNREGISTER, rseq.sig);
  // A table shared with the parent is the parent's to fill.
  if (!sharedTable) remote.call('close_range', 0, 0xffffffff, 0);
  let trampoline = trampolineAddress;
  if (isRoot) {
    trampoline = freeRange(2n * PAGE, [...imageRanges, ...maps]);
    remote.call('mmap', trampoline, 2n * PAGE, PROT_RW, MAP_PRIVATE_ANON_FIXED_NOREPLACE, -1, 0);
    mem.write(trampoline, arch.trampolineCode);
    remote.call('mprotect', trampoline, PAGE, PROT_RX);
    trampolineAddress = trampoline;
  }
  remote.gadget = trampoline;
  const scratch = RemoteScratch.at(remote, mem, trampoline + PAGE, arch.pageSize);
  return { pid, remote, mem, scratch, threads: [] };
}

let trampolineAddress = 0n;

async function reshape(b: Building, p: ProcessImage, reader: ImageReader, opener: FileOpener, files: FileRecord[], sharedMemory: Map<string, string>,
  warn: (m: string) => void, opts: RestoreOptions, stage: { now: string }): Promise<void> {
  const { remote, mem, scratch, pid } = b;
  const { core, mm } = p;
  const trampoline = remote.gadget;
  const put = (data: Buffer) => scratch.put(data);

  // Everything the process had goes, except the trampoline and the kernel's vDSO trio.
  stage.now = `restoring the memory of ${pid}`;
  const maps = readMaps(pid);
  const vdsoNow = vdsoParts(maps);
  const keep = (m: MapEntry) => (m.start >= trampoline && m.end <= trampoline + 2n * PAGE) || m.path === '[vsyscall]'
    || vdsoNow.some((v) => v.start === m.start);
  for (const m of maps) if (!keep(m)) remote.call('munmap', m.start, m.end - m.start);
  if (mm.vdso) {
    const why = vdsoMismatch(mm.vdso, readMaps(pid), mem);
    if (why) throw new RestoreError(`cannot restore on this kernel: ${why}`);
    const taken = [...mm.vmas.map((v) => ({ start: parseHex(v.start), end: parseHex(v.end) })), ...readMaps(pid)];
    moveVdso(remote, mm.vdso, readMaps(pid), (len) => freeRange(len, taken));
  }

  // A memfd both mapped and held as a descriptor is one object: map the one ckpt opens for the
  // descriptor (through /proc/<ckpt>/fd/N), so both stay the same memfd.
  for (const v of mm.vmas) {
    const held = v.memfd ? files.find((f) => f.kind === 'memfd' && f.shmem_id === v.shmem_id) : undefined;
    if (held && !sharedMemory.has(v.shmem_id!)) sharedMemory.set(v.shmem_id!, `/proc/${process.pid}/fd/${await opener.fdOf(held.id)}`);
  }
  const pages = await reader.pages(pid);
  const writableFirst = onceWritable(mm.vmas, pages.entries);
  mapVmas(remote, mm.vmas, put, writableFirst, sharedMemory);
  try {
    await restorePages(remote, mm.vmas, pages, writableFirst, opts.progress ?? (() => {}));
  } finally {
    await pages.close();
  }
  finalProtections(remote, mm.vmas, writableFirst);
  opts.signal?.throwIfAborted();

  const exeFd = Number(remote.call('openat', AT_FDCWD, put(Buffer.from(`${mm.exe}\0`)), O_RDONLY_CLOEXEC, 0));
  setMm(remote, scratch, mm, exeFd);
  remote.call('close', exeFd);

  stage.now = `restoring the files of ${pid}`;
  if (!b.sharedTable) await installFds(remote, put, opener, p.fds.fds);
  stage.now = `restoring the fs, signals, timers and limits of ${pid}`;
  restoreFs(remote, scratch, core.fs);
  restoreSigactions(remote, scratch, core.signals);
  restoreTimers(remote, scratch, core.timers);
  restoreLimits(pid, remote, scratch, core.rlimits, warn);
  restoreProcessAttributes(remote, scratch, core.process);

  // Threads share the mm, files and signal handlers set up so far; each gets its own state.
  stage.now = `restoring the threads and credentials of ${pid}`;
  b.threads = core.threads.map((rec) => ({
    rec, remote: rec.tid === pid ? remote : createThread(remote, scratch, rec.tid),
  }));
  for (const t of b.threads) restoreThreadState(t.remote, scratch, t.rec);
  queueSharedSignals(remote, scratch, pid, core.signals);
  for (const t of b.threads) queueThreadSignals(remote, scratch, pid, t.rec);
  for (const t of b.threads) restoreCreds(pid, t.remote, scratch, core.creds);
}

/**
 * A zombie of the image: the process takes the zombie's name and exits with its status as soon
 * as it is let go (its parent, stopped until then, has not reaped it).
 */
function exitAsZombie(b: Building, zombie: { exit_code: number; comm: string }): void {
  const PR_SET_NAME = 15;
  const termSignal = zombie.exit_code & 0x7f;
  b.remote.call('prctl', PR_SET_NAME, b.scratch.put(Buffer.from(`${zombie.comm}\0`)), 0, 0, 0);
  const regs = { ...b.remote.savedRegs };
  if (termSignal !== 0) {
    // Killed by a signal: it dies by that signal again (default action, not blocked).
    b.remote.call('rt_sigaction', termSignal, b.scratch.put(Buffer.alloc(32)), 0, 8);
    regs[arch.result] = BigInt(arch.nr.kill);
    regs[arch.args[0]] = BigInt(b.pid);
    regs[arch.args[1]] = BigInt(termSignal);
  } else {
    regs[arch.result] = BigInt(arch.nr.exit_group);
    regs[arch.args[0]] = BigInt((zombie.exit_code >> 8) & 0xff);
  }
  regs[arch.syscallNr] = (1n << 64n) - 1n;
  regs[arch.pc] = b.remote.gadget;
  pt.setRegs(b.pid, regs);
  b.threads = [];
  pt.setSigmask(b.pid, 0n);
  pt.detach(b.pid);
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
