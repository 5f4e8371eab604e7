// Dump: a frozen process tree written to an image, and the tree left exactly as it was (or
// ended, when it is not to keep running). The order here is the order of cr-dump in CRIU:
// freeze, read what /proc tells, ask each process itself for the rest, copy memory, write the
// manifest last.
import { hostArch } from '../sys/arch/index.js';
import { trySyscall } from '../sys/libc.js';
import { ProcMem } from '../sys/memory.js';
import { readSmaps, readStat } from '../sys/proc.js';
import { findSyscallInsn, RemoteScratch, RemoteThread } from '../sys/remote.js';
import { ImageWriter } from '../image/index.js';
import { collectCreds, type CredsRecord } from './creds.js';
import { FileTable, type FdEntry, type FileRecord } from './files/index.js';
import { terminalFile } from './files/tty.js';
import { FrozenTree, type FreezeMethod } from './freeze.js';
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
export interface FdsImageRecord { $format: 1; pid: number; fds: FdEntry[] }
export interface FilesImageRecord { $format: 1; files: FileRecord[] }

/** The shape of the tree: parents before their children. */
export interface TreeRecord {
  $format: 1;
  root: number;
  processes: Array<{
    pid: number; ppid: number; pgid: number; sid: number;
    zombie?: { exit_code: number; comm: string };
    /** Shares its parent's descriptor table (created with CLONE_FILES). */
    files_shared?: true;
    /** A session leader's controlling terminal (a tty of files.json) and its foreground group. */
    ctty?: { file: number; foreground?: number };
    /** The root of a shell job: its group was the foreground group of the terminal outside the tree. */
    foreground?: true;
  }>;
}

export interface DumpOptions {
  pid: number;
  dir: string;
  leaveRunning?: boolean;
  method?: FreezeMethod;
  /** A tree frozen earlier (a freeze step); frozen here otherwise. */
  frozen?: FrozenTree;
  /** A shell job: terminals outside the tree are recorded, not refused. */
  shellJob?: boolean;
  warn?: (message: string) => void;
  signal?: AbortSignal;
  progress?: (done: number, total: number) => void;
}

export interface DumpResult {
  pid: number; dir: string; pages: number; bytes: number; processes: number; threads: number; fds: number;
}

const NR_KCMP = 312;
const KCMP_FILES = 2;

/** Threads of one process driven by ckpt during the dump, and its scratch page. */
interface Driven { pid: number; remotes: RemoteThread[]; scratch?: RemoteScratch; mem: ProcMem }

export async function dumpProcess(opts: DumpOptions): Promise<DumpResult> {
  const { pid: root, signal } = opts;
  const frozen = opts.frozen ?? FrozenTree.freeze(root, opts.method ?? 'ptrace');
  let image: ImageWriter | undefined;
  const driven: Driven[] = [];
  try {
    signal?.throwIfAborted();
    image = await ImageWriter.create(opts.dir);
    const files = new FileTable(async (name, data) => { await image!.writeBlob(name, data); return name; },
      { tree: [...frozen.processes.keys()], shellJob: opts.shellJob ?? false, warn: opts.warn ?? (() => {}) });
    const tree: TreeRecord = { $format: 1, root, processes: [] };
    let pages = 0;
    let bytes = 0;
    let fdCount = 0;
    const sizes = new Map<number, number>();
    const shmemSaved = new Set<string>();
    /** Session leaders with a controlling terminal: which file it is is known once every table is. */
    const leaders: Array<{ pid: number; ttyNr: number; tpgid: number }> = [];
    // Everything but the pages first, for every process: whatever the dump refuses (a descriptor,
    // a terminal) is found before any memory is copied.
    const collected: Array<{ pid: number; vmas: MmImageRecord['vmas']; core: CoreRecord; mm: MmImageRecord; fds: FdEntry[] }> = [];
    for (const pid of [...frozen.processes.keys(), ...frozen.zombies].sort(parentsFirst(frozen))) {
      const st = readStat(pid);
      if (frozen.zombies.includes(pid)) {
        tree.processes.push({ pid, ppid: st.ppid, pgid: st.pgrp, sid: st.session, zombie: { exit_code: st.exit_code, comm: st.comm } });
        continue;
      }
      const sharesTable = frozen.processes.has(st.ppid) && trySyscall(NR_KCMP, st.ppid, pid, KCMP_FILES, 0, 0) === 0;
      tree.processes.push({
        pid, ppid: st.ppid, pgid: st.pgrp, sid: st.session, ...(sharesTable ? { files_shared: true as const } : {}),
        ...(pid === root && st.session !== pid && st.tty_nr !== 0 && st.tpgid === st.pgrp ? { foreground: true as const } : {}),
      });
      if (st.session === pid && st.tty_nr !== 0) leaders.push({ pid, ttyNr: st.tty_nr, tpgid: st.tpgid });
      const d: Driven = { pid, remotes: [], mem: new ProcMem(pid, true) };
      driven.push(d);
      // The memory map is read before ckpt maps its scratch page, so that page is not in it.
      const smaps = readSmaps(pid);
      const vmas = smaps.map((v) => describeVma(pid, v));
      const vdso = smaps.find((v) => v.path === '[vdso]');
      const gadget = vdso && findSyscallInsn(d.mem, vdso.start, vdso.end);
      if (gadget === undefined) throw new Error(`process ${pid} has no vDSO with a syscall instruction to drive it`);
      for (const tid of frozen.processes.get(pid)!) d.remotes.push(new RemoteThread(tid, gadget, true));
      const leader = d.remotes.find((r) => r.tid === pid);
      if (!leader) throw new Error(`thread-group leader ${pid} was not frozen`);
      d.scratch = RemoteScratch.map(leader, d.mem);

      const fds = sharesTable ? [] : await files.collect(pid);
      fdCount += fds.length;
      const threads: ThreadRecord[] = [];
      for (const r of d.remotes) {
        const { record, xstate } = collectThread(r, d.scratch);
        await image.writeBlob(record.xstate, xstate);
        threads.push(record);
      }
      const core: CoreRecord = {
        $format: 1,
        process: collectProcess(pid),
        creds: collectCreds(pid),
        rlimits: collectLimits(pid),
        fs: collectFs(pid),
        signals: collectSignals(leader, d.scratch),
        timers: collectTimers(pid, leader, d.scratch),
        threads,
      };
      const mm: MmImageRecord = { $format: 1, pid, ...collectMm(pid, leader, smaps, d.mem), vmas };
      collected.push({ pid, vmas, core, mm, fds });
      signal?.throwIfAborted();
    }
    for (const l of leaders) {
      const file = terminalFile(files.files, l.ttyNr);
      if (!file || file.role === 'external') {
        throw new Error(`process ${l.pid} leads a session whose controlling terminal ${file?.path ?? `(device ${l.ttyNr})`} is `
          + 'outside the dumped tree: not supported (a shell job\'s session leader is its shell, outside the tree)');
      }
      const foreground = tree.processes.some((p) => p.pgid === l.tpgid && p.sid === l.pid) ? { foreground: l.tpgid } : {};
      tree.processes.find((p) => p.pid === l.pid)!.ctty = { file: file.id, ...foreground };
    }

    for (const { pid, vmas, core, mm, fds } of collected) {
      const pageWriter = image.pages(pid);
      const stats = await dumpPages(pid, vmas, pageWriter, (done, total) => {
        sizes.set(pid, total);
        opts.progress?.(bytes + done, [...sizes.values()].reduce((a, b) => a + b, 0));
      }, signal, shmemSaved);
      await pageWriter.close();
      pages += stats.pages;
      bytes += stats.bytes;

      await image.writeRecord('core', pid, core);
      await image.writeRecord('mm', pid, mm);
      await image.writeRecord('fds', pid, { $format: 1, pid, fds } satisfies FdsImageRecord);
    }
    await image.writeRecord('files', null, { $format: 1, files: files.files } satisfies FilesImageRecord);
    await image.writeRecord('tree', null, tree);
    signal?.throwIfAborted();

    putBack(driven);
    await image.commit({ root_pid: root, meta: { arch: hostArch().name } });
    if (signal?.aborted) {
      // Interrupted while the manifest was written: an interrupted dump leaves no image.
      await image.withdraw();
      frozen.thaw();
      throw signal.reason;
    }
    if (opts.leaveRunning) frozen.thaw();
    else frozen.kill();
    return {
      pid: root, dir: opts.dir, pages, bytes, processes: tree.processes.length, threads: frozen.threadCount, fds: fdCount,
    };
  } catch (e) {
    // Whatever failed: the tree goes on exactly as before, and no image is left behind.
    try {
      putBack(driven);
    } finally {
      frozen.thaw();
      await image?.abort();
    }
    throw e;
  }
}

/** Sorts PIDs so that every process comes after its parent (the root first). */
function parentsFirst(frozen: FrozenTree): (a: number, b: number) => number {
  const depth = new Map<number, number>();
  const depthOf = (pid: number): number => {
    if (pid === frozen.root || pid <= 1) return 0;
    let d = depth.get(pid);
    if (d === undefined) {
      d = 1 + depthOf(readStat(pid).ppid);
      depth.set(pid, d);
    }
    return d;
  };
  return (a, b) => depthOf(a) - depthOf(b) || a - b;
}

/** Unmaps ckpt's scratch pages and gives every thread back its registers and signal mask. */
function putBack(driven: Driven[]): void {
  let first: unknown;
  for (const d of driven.splice(0)) {
    try {
      d.scratch?.unmap();
    } catch (e) {
      first ??= e;
    }
    for (const r of d.remotes) {
      try {
        r.restore();
      } catch (e) {
        first ??= e;
      }
    }
    d.mem.close();
  }
  if (first) throw first;
}
