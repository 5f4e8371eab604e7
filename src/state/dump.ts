// Dump: a frozen process written to an image, and the process left exactly as it was (or ended,
// when it is not to keep running). The order here is the order of cr-dump in CRIU: freeze,
// read what /proc tells, ask the process itself for the rest, copy memory, write the manifest.
import { hostArch } from '../sys/arch/index.js';
import { ProcMem } from '../sys/memory.js';
import { readSmaps } from '../sys/proc.js';
import { findSyscallInsn, RemoteScratch, RemoteThread } from '../sys/remote.js';
import { ImageWriter } from '../image/index.js';
import { collectCreds, type CredsRecord } from './creds.js';
import { collectFds, type FdRecord } from './files/index.js';
import { FrozenProcess, type FreezeMethod } from './freeze.js';
import { collectFs, type FsRecord } from './fs.js';
import { collectLimits, type RlimitRecord } from './limits.js';
import { describeVma, dumpPages, type VmaRecord } from './memory.js';
import { collectMm, type MmRecord } from './mm.js';
import { collectProcess, type ProcessRecord } from './process.js';
import { collectSignals, type SignalsRecord } from './signals.js';
import { collectThread, type ThreadRecord } from './threads.js';
import { collectTimers, type TimersRecord } from './timers.js';

export interface CoreRecord {
  $format: 1;
  process: ProcessRecord;
  creds: CredsRecord;
  rlimits: RlimitRecord[];
  fs: FsRecord;
  signals: SignalsRecord;
  timers: TimersRecord;
  threads: ThreadRecord[];
}

export interface MmImageRecord extends MmRecord { $format: 1; pid: number; vmas: VmaRecord[] }
export interface FdsImageRecord { $format: 1; pid: number; fds: FdRecord[] }

export interface DumpOptions {
  pid: number;
  dir: string;
  leaveRunning?: boolean;
  method?: FreezeMethod;
  /** A process frozen earlier (a freeze step); frozen here otherwise. */
  frozen?: FrozenProcess;
  signal?: AbortSignal;
  progress?: (done: number, total: number) => void;
}

export interface DumpResult { pid: number; dir: string; pages: number; bytes: number; threads: number; fds: number }

export async function dumpProcess(opts: DumpOptions): Promise<DumpResult> {
  const { pid, signal } = opts;
  const frozen = opts.frozen ?? FrozenProcess.freeze(pid, opts.method ?? 'ptrace');
  let image: ImageWriter | undefined;
  const remotes: RemoteThread[] = [];
  let scratch: RemoteScratch | undefined;
  let mem: ProcMem | undefined;
  try {
    signal?.throwIfAborted();
    image = await ImageWriter.create(opts.dir);
    mem = new ProcMem(pid, true);
    // The memory map is read before ckpt maps its scratch page, so that page is not in it.
    const smaps = readSmaps(pid);
    const vmas = smaps.map((v) => describeVma(pid, v));
    const vdso = smaps.find((v) => v.path === '[vdso]');
    const gadget = vdso && findSyscallInsn(mem, vdso.start, vdso.end);
    if (gadget === undefined) throw new Error(`process ${pid} has no vDSO with a syscall instruction to drive it`);

    for (const tid of frozen.threads) remotes.push(new RemoteThread(tid, gadget));
    const leader = remotes.find((r) => r.tid === pid);
    if (!leader) throw new Error(`thread-group leader ${pid} was not frozen`);
    scratch = RemoteScratch.map(leader, mem);

    const fds = await collectFds(pid, async (name, data) => { await image!.writeBlob(name, data); return name; });
    const threads: ThreadRecord[] = [];
    for (const r of remotes) {
      const { record, xstate } = collectThread(r, scratch);
      await image.writeBlob(record.xstate, xstate);
      threads.push(record);
    }
    const core: CoreRecord = {
      $format: 1,
      process: collectProcess(pid),
      creds: collectCreds(pid),
      rlimits: collectLimits(pid),
      fs: collectFs(pid),
      signals: collectSignals(leader, scratch),
      timers: collectTimers(pid, leader, scratch),
      threads,
    };
    const mm: MmImageRecord = { $format: 1, pid, ...collectMm(pid, leader, smaps, mem), vmas };
    signal?.throwIfAborted();

    const pageWriter = image.pages(pid);
    const stats = await dumpPages(pid, vmas, pageWriter, opts.progress ?? (() => {}), signal);
    await pageWriter.close();

    await image.writeRecord('core', pid, core);
    await image.writeRecord('mm', pid, mm);
    await image.writeRecord('fds', pid, { $format: 1, pid, fds } satisfies FdsImageRecord);
    signal?.throwIfAborted();

    putBack(remotes, scratch);
    scratch = undefined;
    await image.commit({ root_pid: pid, meta: { arch: hostArch().name } });
    if (opts.leaveRunning) frozen.thaw();
    else frozen.kill();
    return { pid, dir: opts.dir, pages: stats.pages, bytes: stats.bytes, threads: threads.length, fds: fds.length };
  } catch (e) {
    // Whatever failed: the process goes on exactly as before, and no image is left behind.
    try {
      putBack(remotes, scratch);
    } finally {
      frozen.thaw();
      await image?.abort();
    }
    throw e;
  } finally {
    mem?.close();
  }
}

/** Unmaps ckpt's scratch page and gives every thread back its registers and signal mask. */
function putBack(remotes: RemoteThread[], scratch: RemoteScratch | undefined): void {
  let first: unknown;
  try {
    scratch?.unmap();
  } catch (e) {
    first = e;
  }
  for (const r of remotes.splice(0)) {
    try {
      r.restore();
    } catch (e) {
      first ??= e;
    }
  }
  if (first) throw first;
}
