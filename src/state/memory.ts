// The address space: every VMA and the contents of the pages that need saving.
//
// Dump: /proc/PID/smaps gives the VMAs; pagemap says which pages exist. Saved are pages of
// private anonymous memory that were ever touched (present or swapped), pages of private file
// mappings that were written (no longer the file's page cache), and the data of shared
// anonymous memory (read once through map_files, holes skipped). Shared file mappings live in
// their files. Pages are read with process_vm_readv in batches of up to 16 MiB.
//
// Restore: every VMA is mapped at its address with its protections, then the saved pages are
// written back (process_vm_writev; /proc/PID/mem where the mapping is not writable), big runs
// populated in one go first because faulting fresh pages one by one is slow.
import fs from 'node:fs';
import {
  mapFilesPath, openPagemap, PAGE_SIZE, PM_FILE, PM_PRESENT, PM_SWAP, PROT_READ, PROT_WRITE,
  type SmapsEntry,
} from '../sys/proc.js';
import { readRanges, writeRanges, IOV_MAX, ProcMem, type RemoteRange } from '../sys/memory.js';
import { dataExtents } from '../sys/files.js';
import type { RemoteThread } from '../sys/remote.js';
import { hex, parseHex } from '../image/hex.js';
import type { PageWriter, PageReader, PageEntry } from '../image/index.js';

const PAGE = BigInt(PAGE_SIZE);
const BATCH_BYTES = 16 << 20;
const POOL_SIZE = 4;

export type VmaKind = 'anon' | 'file' | 'shmem' | 'vdso' | 'vvar' | 'vvar_vclock' | 'vsyscall';

export interface VmaRecord {
  start: string;
  end: string;
  /** As in /proc/PID/maps: 'rw-p', 'r-xs', ... */
  perms: string;
  kind: VmaKind;
  /** Offset into the file (or shared memory object), in bytes. */
  offset: string;
  /** '[heap]', '[stack]', '[anon:NAME]' where the kernel names the area. */
  name?: string;
  file?: { path: string; dev: string; ino: number; size: number; mtime_ns: string; writable: boolean };
  /** VmFlags of smaps. */
  vm_flags: string[];
  /** Shared memory: the object's inode, the same in every process that maps it. */
  shmem_id?: string;
  /** Shared memory of a memfd: its name and size, to create it again. */
  memfd?: { name: string; size: number };
}

const SPECIAL: Record<string, VmaKind> = {
  '[vdso]': 'vdso', '[vvar]': 'vvar', '[vvar_vclock]': 'vvar_vclock', '[vsyscall]': 'vsyscall',
};

export class UnsupportedMappingError extends Error {}

const MEMFD_PREFIX = '/memfd:';

export function describeVma(pid: number, v: SmapsEntry): VmaRecord {
  const base = {
    start: hex(v.start), end: hex(v.end), perms: v.perms, offset: hex(v.offset), vm_flags: v.vmFlags,
  };
  const special = SPECIAL[v.path];
  if (special) return { ...base, kind: special };
  const anonName = v.path.startsWith('[') ? { name: v.path } : {};
  if (v.inode === 0) return { ...base, kind: 'anon', ...anonName };
  if (v.shared && v.deleted && (v.path === '/dev/zero' || v.path.startsWith('/SYSV'))) {
    return { ...base, kind: 'shmem', shmem_id: `${v.dev}:${v.inode}` };
  }
  if (v.shared && v.deleted && v.path.startsWith(MEMFD_PREFIX)) {
    const size = Number(fs.statSync(mapFilesPath(pid, v.start, v.end)).size);
    return { ...base, kind: 'shmem', shmem_id: `${v.dev}:${v.inode}`, memfd: { name: v.path.slice(MEMFD_PREFIX.length), size } };
  }
  if (v.deleted) {
    throw new UnsupportedMappingError(
      `unsupported mapping ${hex(v.start)}-${hex(v.end)} of deleted file ${v.path} in process ${pid}`);
  }
  const st = fs.statSync(mapFilesPath(pid, v.start, v.end), { bigint: true });
  return {
    ...base,
    kind: 'file',
    file: {
      path: v.path, dev: v.dev, ino: Number(st.ino), size: Number(st.size), mtime_ns: st.mtimeNs.toString(),
      writable: v.shared && v.vmFlags.includes('mw'),
    },
  };
}

interface Run { addr: bigint; pages: number }

/** Runs of pages of one VMA whose contents must be saved, from pagemap. */
function runsToSave(pagemap: ReturnType<typeof openPagemap>, vma: VmaRecord): Run[] {
  const start = parseHex(vma.start);
  const entries = pagemap.read(start, parseHex(vma.end));
  // Only pages no longer identical to a file's page cache carry state of their own.
  const fileBacked = vma.kind === 'file';
  const runs: Run[] = [];
  let runStart = -1;
  for (let i = 0; i <= entries.length; i++) {
    let save = false;
    if (i < entries.length) {
      const e = entries[i];
      save = (e & (PM_PRESENT | PM_SWAP)) !== 0n && !(fileBacked && (e & PM_FILE) !== 0n);
    }
    if (save && runStart < 0) runStart = i;
    else if (!save && runStart >= 0) {
      runs.push({ addr: start + BigInt(runStart) * PAGE, pages: i - runStart });
      runStart = -1;
    }
  }
  return runs;
}

export interface PageStats { pages: number; bytes: number }

/**
 * Saves the contents of the VMAs into `pages`. `progress` gets bytes saved and the total
 * expected.
 */
export async function dumpPages(pid: number, vmas: VmaRecord[], pages: PageWriter,
  progress: (done: number, total: number) => void, signal?: AbortSignal,
  shmemSaved: Set<string> = new Set()): Promise<PageStats> {
  const pagemap = openPagemap(pid);
  const plan: { vma: VmaRecord; runs: Run[] }[] = [];
  try {
    for (const vma of vmas) {
      if (vma.kind === 'anon' || (vma.kind === 'file' && !vma.perms.includes('s'))) {
        plan.push({ vma, runs: runsToSave(pagemap, vma) });
      }
    }
  } finally {
    pagemap.close();
  }
  const total = plan.reduce((s, p) => s + p.runs.reduce((a, r) => a + r.pages * PAGE_SIZE, 0), 0);
  let done = 0;
  const advance = (n: number) => { done += n; progress(done, total); };

  const mem = new ProcMem(pid);
  // A few batch buffers, reused once their write is done: fresh memory is slow to fault in.
  const pool = Array.from({ length: POOL_SIZE }, () => ({ buf: undefined as Buffer | undefined, written: Promise.resolve() }));
  let next = 0;
  try {
    // Readable VMAs go through process_vm_readv in batches; the rest through /proc/PID/mem.
    let batch: Run[] = [];
    let batchBytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      signal?.throwIfAborted();
      const slot = pool[next++ % POOL_SIZE];
      await slot.written;
      // Shared memory: the image module checksums it in a worker thread meanwhile.
      slot.buf ??= Buffer.from(new SharedArrayBuffer(BATCH_BYTES));
      const buf = slot.buf.subarray(0, batchBytes);
      const ranges: RemoteRange[] = batch.map((r) => ({ addr: r.addr, len: r.pages * PAGE_SIZE }));
      const n = readRanges(pid, buf, 0, ranges);
      if (n !== batchBytes) throw new Error(`process ${pid}: short read of memory (${n} of ${batchBytes} bytes)`);
      slot.written = pages.writeRuns(batch, buf);
      advance(batchBytes);
      batch = [];
      batchBytes = 0;
    };
    for (const { vma, runs } of plan) {
      const readable = vma.perms[0] === 'r';
      for (const run of runs) {
        if (!readable) {
          await flush();
          const buf = Buffer.allocUnsafeSlow(run.pages * PAGE_SIZE);
          mem.read(run.addr, buf);
          await pages.add(run.addr, buf);
          advance(buf.length);
          continue;
        }
        // Split runs larger than a batch so memory held in flight stays bounded.
        for (let p = 0; p < run.pages;) {
          const room = Math.floor((BATCH_BYTES - batchBytes) / PAGE_SIZE);
          const take = Math.min(room, run.pages - p);
          batch.push({ addr: run.addr + BigInt(p) * PAGE, pages: take });
          batchBytes += take * PAGE_SIZE;
          p += take;
          if (batchBytes >= BATCH_BYTES || batch.length >= IOV_MAX) await flush();
        }
      }
    }
    await flush();
    await Promise.all(pool.map((s) => s.written));
    // Shared memory is saved with the first process of the tree that maps it.
    for (const vma of vmas) {
      if (vma.kind !== 'shmem' || shmemSaved.has(vma.shmem_id!)) continue;
      await dumpShmem(pid, vma, pages, advance);
    }
    for (const vma of vmas) if (vma.kind === 'shmem') shmemSaved.add(vma.shmem_id!);
  } finally {
    mem.close();
  }
  return { pages: done / PAGE_SIZE, bytes: done };
}

/** Shared anonymous memory: its data through map_files, so pages this process never touched count too. */
async function dumpShmem(pid: number, vma: VmaRecord, pages: PageWriter, advance: (n: number) => void): Promise<void> {
  const start = parseHex(vma.start);
  const end = parseHex(vma.end);
  const offset = parseHex(vma.offset);
  const fd = fs.openSync(mapFilesPath(pid, start, end), 'r');
  try {
    for (const [from, to] of dataExtents(fd, offset, offset + (end - start))) {
      for (let pos = from; pos < to;) {
        const len = Number(to - pos < BigInt(BATCH_BYTES) ? to - pos : BigInt(BATCH_BYTES));
        const buf = Buffer.allocUnsafeSlow(len);
        let got = 0;
        while (got < len) got += fs.readSync(fd, buf, got, len - got, pos + BigInt(got));
        await pages.add(start + (pos - offset), buf);
        advance(len);
        pos += BigInt(len);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// restore

const PROT: Record<string, number> = { r: PROT_READ, w: PROT_WRITE, x: 4 };
export const protOf = (perms: string) => [...perms.slice(0, 3)].reduce((p, c) => p | (PROT[c] ?? 0), 0);

const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
const MAP_GROWSDOWN = 0x100;
const AT_FDCWD = -100;
const O_RDONLY = 0;
const O_RDWR = 2;
const O_CLOEXEC = 0o2000000;
const PR_SET_VMA = 0x53564d41;
const PR_SET_VMA_ANON_NAME = 0;
const MADV_POPULATE_WRITE = 23;
/** Runs shorter than this are left to fault in during the copy. */
const POPULATE_MIN = 64 * PAGE_SIZE;
const MFD_CLOEXEC = 1;
/** Advice that sets a VmFlag, by its smaps name. */
const MADVISE_FOR_FLAG: Record<string, number> = { dc: 10, mg: 12, hg: 14, nh: 15, dd: 16, wf: 18 };

/**
 * Private VMAs that are not writable now but hold saved pages: they were written, so they were
 * writable once (the relro part of a library, typically). The kernel keeps such a VMA apart
 * from a never-writable neighbour (its accounting flag differs); mapping it writable and
 * protecting it after its pages are back gives the same split.
 */
export function onceWritable(vmas: VmaRecord[], entries: readonly PageEntry[]): Set<string> {
  const out = new Set<string>();
  const candidates = vmas.filter((v) => v.perms[1] !== 'w' && v.perms[3] === 'p' && (v.kind === 'anon' || v.kind === 'file'));
  for (const v of candidates) {
    const start = parseHex(v.start);
    const end = parseHex(v.end);
    if (entries.some((e) => e.kind === 'data' && e.addr < end && e.addr + BigInt(e.pages) * PAGE > start)) out.add(v.start);
  }
  return out;
}

/**
 * Maps every VMA of the image (all but the kernel's special ones, which are already in place)
 * into the process driven by `remote`. `put` writes a string into the process for syscalls.
 * VMAs in `writableFirst` are mapped writable; finalProtections() turns them to their perms.
 * `sharedElsewhere` maps shared memory objects already restored in another process of the tree
 * to a map_files path of theirs; objects created here are added to it.
 */
export function mapVmas(remote: RemoteThread, vmas: VmaRecord[], put: (data: Buffer) => bigint,
  writableFirst: Set<string>, sharedElsewhere: Map<string, string>): void {
  const openFiles = new Map<string, number>();
  try {
    for (const v of vmas) {
      if (v.kind !== 'anon' && v.kind !== 'file' && v.kind !== 'shmem') continue;
      const start = parseHex(v.start);
      const len = parseHex(v.end) - start;
      const shared = v.perms[3] === 's';
      let flags = MAP_FIXED | (shared ? MAP_SHARED : MAP_PRIVATE);
      const prot = protOf(v.perms) | (writableFirst.has(v.start) ? PROT_WRITE : 0);
      if (v.vm_flags.includes('gd')) flags |= MAP_GROWSDOWN;
      const elsewhere = v.kind === 'shmem' ? sharedElsewhere.get(v.shmem_id!) : undefined;
      if (elsewhere) {
        // The object exists in a process restored before: map the same one, through map_files.
        const fd = Number(remote.call('openat', AT_FDCWD, put(Buffer.from(`${elsewhere}\0`)), O_RDWR | O_CLOEXEC, 0));
        try {
          remote.call('mmap', start, len, prot, flags, fd, parseHex(v.offset));
        } finally {
          remote.call('close', fd);
        }
      } else if (v.memfd) {
        const fd = Number(remote.call('memfd_create', put(Buffer.from(`${v.memfd.name}\0`)), MFD_CLOEXEC));
        try {
          remote.call('ftruncate', fd, v.memfd.size);
          remote.call('mmap', start, len, prot, flags, fd, parseHex(v.offset));
        } finally {
          remote.call('close', fd);
        }
      } else if (v.kind === 'file') {
        const f = v.file!;
        const key = `${f.writable ? 'w' : 'r'}:${f.path}`;
        let fd = openFiles.get(key);
        if (fd === undefined) {
          fd = Number(remote.call('openat', AT_FDCWD, put(Buffer.from(`${f.path}\0`)),
            (f.writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0));
          openFiles.set(key, fd);
        }
        remote.call('mmap', start, len, prot, flags, fd, parseHex(v.offset));
      } else {
        remote.call('mmap', start, len, prot, flags | MAP_ANONYMOUS, -1, 0);
      }
      if (v.kind === 'shmem' && !elsewhere) {
        sharedElsewhere.set(v.shmem_id!, mapFilesPath(remote.tid, start, start + len));
      }
      for (const [flag, advice] of Object.entries(MADVISE_FOR_FLAG)) {
        if (v.vm_flags.includes(flag)) remote.call('madvise', start, len, advice);
      }
      if (v.name?.startsWith('[anon:')) {
        remote.call('prctl', PR_SET_VMA, PR_SET_VMA_ANON_NAME, start, len,
          put(Buffer.from(`${v.name.slice(6, -1)}\0`)));
      }
    }
  } finally {
    for (const fd of openFiles.values()) remote.call('close', fd);
  }
}

/** Gives the VMAs mapped writable first their final protections. */
export function finalProtections(remote: RemoteThread, vmas: VmaRecord[], writableFirst: Set<string>): void {
  for (const v of vmas) {
    if (writableFirst.has(v.start)) remote.call('mprotect', parseHex(v.start), parseHex(v.end) - parseHex(v.start), protOf(v.perms));
  }
}

/**
 * Writes the saved pages back. Writable runs are populated in bulk first (one madvise each);
 * process_vm_writev carries the data, /proc/PID/mem where the mapping is read-only.
 */
export async function restorePages(remote: RemoteThread, vmas: VmaRecord[], reader: PageReader,
  writableFirst: Set<string>, progress: (done: number, total: number) => void): Promise<PageStats> {
  const pid = remote.tid;
  const segments = splitByVma(reader.entries, vmas, writableFirst);
  const total = segments.reduce((s, e) => s + e.len, 0);
  const mem = new ProcMem(pid, true);
  let done = 0;
  try {
    // Segments are contiguous in the pages file: batches of <= 16 MiB, each read with one
    // read into one of two reused buffers, the next read under way while this one is written.
    const batches: { segments: Segment[]; bytes: number }[] = [];
    for (let i = 0; i < segments.length;) {
      const batch: Segment[] = [];
      let bytes = 0;
      while (i < segments.length && batch.length < IOV_MAX && bytes + segments[i].len <= BATCH_BYTES
        && (batch.length === 0 || segments[i].offset === batch[0].offset + bytes)) {
        batch.push(segments[i]);
        bytes += segments[i].len;
        i++;
      }
      batches.push({ segments: batch, bytes });
    }
    const buffers: Buffer[] = [];
    const readBatch = (k: number) => {
      buffers[k % 2] ??= Buffer.allocUnsafeSlow(BATCH_BYTES);
      return reader.readRange(batches[k].segments[0].offset, batches[k].bytes, buffers[k % 2]);
    };
    // The process populates the memory of the next batch (one madvise per big run, in bulk:
    // faulting fresh pages one by one is slow) while ckpt writes this one.
    const populateRanges = (k: number) => batches[k].segments.filter((s) => s.writable && s.len >= POPULATE_MIN);
    let populating: Segment[] = [];
    const startPopulate = (k: number) => {
      populating = k < batches.length ? populateRanges(k) : [];
      if (populating.length > 0) remote.start('madvise', populating[0].addr, populating[0].len, MADV_POPULATE_WRITE);
    };
    const finishPopulate = () => {
      if (populating.length === 0) return;
      remote.tryFinish(); // best effort: a range that cannot be populated is faulted by the copy
      for (const s of populating.slice(1)) remote.tryCall('madvise', s.addr, s.len, MADV_POPULATE_WRITE);
      populating = [];
    };
    let next = batches.length > 0 ? readBatch(0) : undefined;
    startPopulate(0);
    for (let k = 0; k < batches.length; k++) {
      const buf = await next!;
      next = k + 1 < batches.length ? readBatch(k + 1) : undefined;
      finishPopulate();
      startPopulate(k + 1);
      let off = 0;
      let vmRanges: RemoteRange[] = [];
      let vmStart = 0;
      const flushVm = () => {
        if (vmRanges.length === 0) return;
        const len = vmRanges.reduce((s, r) => s + r.len, 0);
        const n = writeRanges(pid, buf, vmStart, vmRanges);
        if (n !== len) throw new Error(`process ${pid}: short write of memory (${n} of ${len} bytes)`);
        vmRanges = [];
      };
      for (const s of batches[k].segments) {
        if (s.writable) {
          if (vmRanges.length === 0) vmStart = off;
          vmRanges.push({ addr: s.addr, len: s.len });
        } else {
          flushVm();
          mem.write(s.addr, buf, off, s.len);
        }
        off += s.len;
      }
      flushVm();
      done += batches[k].bytes;
      progress(done, total);
    }
    finishPopulate();
  } finally {
    mem.close();
  }
  return { pages: done / PAGE_SIZE, bytes: done };
}

interface Segment { addr: bigint; len: number; offset: number; writable: boolean }

/**
 * Data entries of the pagemap cut at VMA boundaries and into pieces of at most a batch, each
 * with its place in the pages file.
 */
function splitByVma(entries: readonly PageEntry[], vmas: VmaRecord[], writableFirst: Set<string>): Segment[] {
  const bounds = vmas.map((v) => ({
    start: parseHex(v.start), end: parseHex(v.end), writable: v.perms[1] === 'w' || writableFirst.has(v.start),
  }));
  const out: Segment[] = [];
  let vi = 0;
  for (const e of entries) {
    if (e.kind !== 'data') continue;
    let addr = e.addr;
    const end = addr + BigInt(e.pages) * PAGE;
    let offset = e.offset!;
    while (addr < end) {
      while (vi < bounds.length && bounds[vi].end <= addr) vi++;
      if (vi === bounds.length || bounds[vi].start > addr) vi = bounds.findIndex((b) => b.start <= addr && addr < b.end);
      if (vi < 0) throw new Error(`image has pages at ${hex(addr)} outside every mapping`);
      const b = bounds[vi];
      let segEnd = end < b.end ? end : b.end;
      if (segEnd - addr > BigInt(BATCH_BYTES)) segEnd = addr + BigInt(BATCH_BYTES);
      const len = Number(segEnd - addr);
      out.push({ addr, len, offset, writable: b.writable });
      offset += len;
      addr = segEnd;
    }
  }
  return out;
}
