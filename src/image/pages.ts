import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { crc32s, crc32sOfFile } from './crc.js';
import { ImageError } from './errors.js';
import { createFile, readExactly } from './files.js';
import { hex, parseHex } from './hex.js';
import { pagemapFileName, pagesFileName } from './names.js';
import type { WriteQueue } from './queue.js';
import { RECORD_FORMAT } from './schemas.js';
import { PAGE_SIZE, type ManifestFile, type PageEntry, type PageKind, type Pagemap, type PagemapEntry } from './types.js';

const ADDR_LIMIT = 1n << 64n;
/** Reads of pages files go in pieces of this size, several at once. */
const READ_PIECE = 8 << 20;
const READ_CONCURRENCY = 4;

/** What a PageWriter needs from the ImageWriter that made it. */
export interface PageStoreHost {
  readonly dir: string;
  readonly queue: WriteQueue;
  /** A file now exists on disk; abort() must remove it. */
  created(name: string): void;
  /** Adds a file to the manifest's list. */
  list(name: string, entry: ManifestFile): void;
  /** Validates, writes and lists a record whose text is already serialized. */
  storeRecord(name: string, kind: string, data: unknown, text: string): Promise<void>;
}

function runEnd(addr: bigint, pages: number): bigint {
  return addr + BigInt(pages) * BigInt(PAGE_SIZE);
}

function describeRun(e: { addr: bigint; pages: number }): string {
  return `run at ${hex(e.addr)} (${e.pages} page${e.pages === 1 ? '' : 's'})`;
}

function checkRun(addr: bigint, pages: number, what: string): void {
  if (typeof addr !== 'bigint' || addr < 0n || addr % BigInt(PAGE_SIZE) !== 0n) {
    throw new ImageError(`${what}: address ${String(addr)} is not a page-aligned bigint`);
  }
  if (!Number.isSafeInteger(pages) || pages < 1) throw new ImageError(`${what}: page count ${pages} is not a positive integer`);
  if (runEnd(addr, pages) > ADDR_LIMIT) throw new ImageError(`${what}: ${describeRun({ addr, pages })} ends beyond 2^64`);
}

/**
 * Writes the pages of one process: pages-<pid>.img holds the data runs back to back in the
 * order they were added, pagemap-<pid>.json (written by close()) says where each run belongs.
 * Each data run carries the CRC-32 of its bytes: zlib's crc32 runs at ~4 GiB/s on one core
 * where sha256 manages ~1.1, and it detects every flipped byte (any burst up to 32 bits).
 */
export class PageWriter {
  readonly pid: number;
  /** Name of the pages file inside the image. */
  readonly file: string;
  private readonly host: PageStoreHost;
  private readonly runs: PageEntry[] = [];
  private readonly pending = new Set<Promise<void>>();
  private size = 0;
  private written = 0;
  private fh: FileHandle | undefined;
  private opening: Promise<FileHandle> | undefined;
  private closing: Promise<void> | undefined;

  constructor(host: PageStoreHost, pid: number) {
    this.host = host;
    this.pid = pid;
    this.file = pagesFileName(pid);
  }

  /** Bytes of page data already in the pages file (written, not merely queued). */
  get bytesWritten(): number {
    return this.written;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /**
   * Queues a data run: buf.length / 4096 pages starting at addr. The writer takes
   * ownership of buf: do not modify or reuse it afterwards (use write() for that).
   * Resolves as soon as the image's bytes in flight are below the bound, so a fast reader
   * is held back without waiting for this very write.
   */
  add(addr: bigint, buf: Buffer): Promise<void> {
    return this.addRuns([{ addr, pages: buf.length / PAGE_SIZE }], buf);
  }

  /**
   * Queues several data runs whose pages lie back to back in buf, as one process_vm_readv
   * of many ranges leaves them: one write for all, a checksum for each. Ownership as add().
   */
  addRuns(runs: readonly { addr: bigint; pages: number }[], buf: Buffer): Promise<void> {
    try {
      this.enqueue(runs, buf);
    } catch (err) {
      return Promise.reject(err);
    }
    // A failed write is reported by the next add(), close() or commit().
    return this.host.queue.room();
  }

  /** Like add(), but resolves only once buf is written: then the caller may reuse it. */
  write(addr: bigint, buf: Buffer): Promise<void> {
    return this.writeRuns([{ addr, pages: buf.length / PAGE_SIZE }], buf);
  }

  /** Like addRuns(), but resolves only once buf is written: then the caller may reuse it. */
  writeRuns(runs: readonly { addr: bigint; pages: number }[], buf: Buffer): Promise<void> {
    try {
      return this.enqueue(runs, buf);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Pages that read as zero (never written, or all-zero): nothing is stored. */
  addZero(addr: bigint, pages: number): void {
    this.addEmpty('zero', addr, pages);
  }

  /** Pages whose contents are in the parent image (incremental dumps). */
  addParent(addr: bigint, pages: number): void {
    this.addEmpty('parent', addr, pages);
  }

  /** Pages fetched on demand at restore (lazy migration). */
  addLazy(addr: bigint, pages: number): void {
    this.addEmpty('lazy', addr, pages);
  }

  /**
   * Waits for this process's writes, syncs the pages file and writes pagemap-<pid>.json.
   * Refuses runs that overlap. Called again, returns the same promise.
   */
  close(): Promise<void> {
    this.closing ??= this.finish();
    return this.closing;
  }

  /** For ImageWriter.abort(): let queued writes end, then close the file without writing the pagemap. */
  async discard(): Promise<void> {
    this.closing ??= Promise.reject(new ImageError(`${this.file}: image aborted`));
    this.closing.catch(() => undefined);
    await Promise.allSettled([...this.pending]);
    const fh = this.fh ?? (await this.opening?.catch(() => undefined));
    this.fh = undefined;
    await fh?.close();
  }

  private checkOpen(): void {
    if (this.closing) throw new ImageError(`${this.file}: pages of pid ${this.pid} are already closed`);
    if (this.host.queue.failure) throw this.host.queue.failure;
  }

  private handle(): FileHandle | Promise<FileHandle> {
    if (this.fh) return this.fh;
    this.opening ??= createFile(path.join(this.host.dir, this.file)).then((fh) => {
      this.host.created(this.file);
      return (this.fh = fh);
    });
    return this.opening;
  }

  private enqueue(runs: readonly { addr: bigint; pages: number }[], buf: Buffer): Promise<void> {
    this.checkOpen();
    if (!Buffer.isBuffer(buf) || buf.length === 0 || buf.length % PAGE_SIZE !== 0) {
      throw new ImageError(`${this.file}: page data must be a non-empty Buffer whose length is a multiple of ${PAGE_SIZE}`);
    }
    let pages = 0;
    for (const r of runs) {
      checkRun(r.addr, r.pages, this.file);
      pages += r.pages;
    }
    if (pages * PAGE_SIZE !== buf.length) throw new ImageError(`${this.file}: runs of ${pages} pages given ${buf.length} bytes of data`);
    const offset = this.size;
    this.size += buf.length;
    const done = this.host.queue.write(this.handle(), buf, offset, this.file, this.onWritten);
    // The write above is already under way in libuv's threads; checksum meanwhile (in the
    // worker thread for shared buffers, inline otherwise).
    let at = 0;
    const entries = runs.map((r) => {
      const entry: PageEntry = { addr: r.addr, pages: r.pages, kind: 'data', offset: offset + at, crc32: 0 };
      at += r.pages * PAGE_SIZE;
      this.runs.push(entry);
      return entry;
    });
    const crcs = crc32s(buf, runs.map((r) => r.pages * PAGE_SIZE));
    let checked: Promise<void> | undefined;
    if (Array.isArray(crcs)) crcs.forEach((c, i) => { entries[i]!.crc32 = c; });
    else {
      const inWorker = crcs.then((cs) => cs.forEach((c, i) => { entries[i]!.crc32 = c; }));
      checked = inWorker;
      this.pending.add(inWorker);
      inWorker.then(() => this.pending.delete(inWorker), () => undefined);
    }
    // Small writes share one queued writev, hence one promise: track each only once.
    if (!this.pending.has(done)) {
      this.pending.add(done);
      const forget = (): void => void this.pending.delete(done);
      done.then(forget, forget);
    }
    return checked ? Promise.all([done, checked]).then(() => undefined) : done;
  }

  private readonly onWritten = (bytes: number): void => {
    this.written += bytes;
  };

  private addEmpty(kind: PageKind, addr: bigint, pages: number): void {
    this.checkOpen();
    checkRun(addr, pages, this.file);
    const last = this.runs[this.runs.length - 1];
    if (last && last.kind === kind && runEnd(last.addr, last.pages) === addr) last.pages += pages;
    else this.runs.push({ addr, pages, kind });
  }

  private async finish(): Promise<void> {
    await Promise.allSettled([...this.pending]);
    if (this.host.queue.failure) {
      await this.discard();
      throw this.host.queue.failure;
    }
    let fh: FileHandle;
    try {
      fh = await this.handle();
    } catch (err) {
      throw new ImageError(`${this.file}: cannot create: ${(err as Error).message}`, { file: this.file, cause: err });
    }
    try {
      await fh.sync();
    } finally {
      this.fh = undefined;
      await fh.close();
    }
    const runs = [...this.runs].sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
    for (let i = 1; i < runs.length; i++) {
      if (runs[i]!.addr < runEnd(runs[i - 1]!.addr, runs[i - 1]!.pages)) {
        throw new ImageError(`${this.file}: pages of pid ${this.pid}: ${describeRun(runs[i]!)} overlaps ${describeRun(runs[i - 1]!)}`);
      }
    }
    const name = pagemapFileName(this.pid);
    const entries: PagemapEntry[] = runs.map((r) =>
      r.kind === 'data' ? { addr: hex(r.addr), pages: r.pages, kind: r.kind, offset: r.offset!, crc32: r.crc32! } : { addr: hex(r.addr), pages: r.pages, kind: r.kind },
    );
    const pagemap: Pagemap = { $format: RECORD_FORMAT, pid: this.pid, entries };
    // One entry per line: compact for big maps, still readable and diffable.
    const text = `{"$format":${RECORD_FORMAT},"pid":${this.pid},"entries":[\n${entries.map((e) => JSON.stringify(e)).join(',\n')}\n]}\n`;
    this.host.list(this.file, { size: this.size, checked_by: name });
    await this.host.storeRecord(name, 'pagemap', pagemap, text);
  }
}

/**
 * Checks what a pagemap claims against its pages file: runs sorted and apart, data runs
 * tiling the file exactly (so every byte is covered by some run's checksum). Returns the
 * entries with their addresses parsed.
 */
export function checkPagemap(pagemap: Pagemap, pid: number, file: string, pagesName: string, pagesSize: number): PageEntry[] {
  if (pagemap.pid !== pid) throw new ImageError(`${file}: says pid ${pagemap.pid}, its name says ${pid}`, { file });
  const entries: PageEntry[] = pagemap.entries.map((e) => ({ ...e, addr: parseHex(e.addr) }));
  entries.forEach((e, i) => {
    if (e.addr % BigInt(PAGE_SIZE) !== 0n || runEnd(e.addr, e.pages) > ADDR_LIMIT) {
      throw new ImageError(`${file}: entry ${i}: ${describeRun(e)} is not page-aligned or ends beyond 2^64`, { file });
    }
    const prev = entries[i - 1];
    if (prev && e.addr < runEnd(prev.addr, prev.pages)) {
      throw new ImageError(`${file}: entry ${i}: ${describeRun(e)} is out of order or overlaps ${describeRun(prev)}`, { file });
    }
  });
  const data = entries.filter((e) => e.kind === 'data').sort((a, b) => a.offset! - b.offset!);
  let end = 0;
  for (const e of data) {
    if (e.offset !== end) {
      throw new ImageError(`${file}: data ${describeRun(e)} is at offset ${e.offset} of ${pagesName}, expected ${end}`, { file });
    }
    end += e.pages * PAGE_SIZE;
  }
  if (end !== pagesSize) throw new ImageError(`${file}: data runs cover ${end} bytes but ${pagesName} has ${pagesSize}`, { file });
  return entries;
}

/** Reads the pages of one process. Get one from ImageReader.pages(pid); close() it when done. */
export class PageReader {
  /** Runs sorted by address. offset and crc32 are set for data runs. */
  readonly entries: readonly PageEntry[];

  constructor(
    readonly pid: number,
    /** Path of the pages file. */
    readonly file: string,
    entries: PageEntry[],
    /** Bytes in the pages file. */
    readonly size: number,
    private fh: FileHandle | undefined,
  ) {
    this.entries = entries;
  }

  /**
   * The contents of one run, into buf (which must hold at least pages * 4096 bytes) or a
   * new Buffer; returns exactly the run's bytes. Data runs are checked against their CRC-32;
   * zero runs read as zeros; parent and lazy runs have no contents here.
   */
  async read(entry: PageEntry, buf?: Buffer): Promise<Buffer> {
    const length = entry.pages * PAGE_SIZE;
    if (buf && buf.length < length) throw new ImageError(`${this.file}: buffer of ${buf.length} bytes is too small for ${describeRun(entry)}`, { file: this.file });
    if (entry.kind === 'zero') return (buf ? buf.subarray(0, length) : Buffer.alloc(length)).fill(0);
    if (entry.kind !== 'data') {
      throw new ImageError(`${this.file}: ${describeRun(entry)} is of kind "${entry.kind}": its contents are not in this image`, { file: this.file });
    }
    const out = await this.readRange(entry.offset!, length, buf);
    const crc = zlib.crc32(out);
    if (crc !== entry.crc32) {
      throw new ImageError(`${this.file}: checksum mismatch in data ${describeRun(entry)} at offset ${entry.offset}: the pages file is damaged`, { file: this.file });
    }
    return out;
  }

  /** Raw bytes of the pages file, unchecked (read() checks whole runs). */
  async readRange(offset: number, length: number, buf?: Buffer): Promise<Buffer> {
    const fh = this.open();
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new ImageError(`${this.file}: range of ${length} bytes at offset ${offset} is outside the file (${this.size} bytes)`, { file: this.file });
    }
    if (buf && buf.length < length) throw new ImageError(`${this.file}: buffer of ${buf.length} bytes is too small for ${length}`, { file: this.file });
    const out = buf ? buf.subarray(0, length) : Buffer.allocUnsafe(length);
    let next = 0;
    const reader = async (): Promise<void> => {
      while (next < length) {
        const at = next;
        const n = Math.min(READ_PIECE, length - at);
        next += n;
        await readExactly(fh, out, at, n, offset + at, this.file);
      }
    };
    await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, Math.ceil(length / READ_PIECE)) }, reader));
    return out;
  }

  /**
   * Reads the whole file once and checks every data run's CRC-32; the data runs tile the
   * file, so any damaged byte is found. Reading the next piece overlaps checksumming this one.
   */
  async verify(): Promise<void> {
    const data = this.entries.filter((e) => e.kind === 'data').sort((a, b) => a.offset! - b.offset!);
    let crcs: number[];
    try {
      crcs = await crc32sOfFile(this.file, data.map((e) => [e.offset!, e.pages * PAGE_SIZE] as const));
    } catch (err) {
      throw new ImageError(`${this.file}: cannot read: ${(err as Error).message}`, { file: this.file, cause: err });
    }
    const bad = data.find((e, i) => crcs[i] !== e.crc32);
    if (bad) {
      throw new ImageError(`${this.file}: checksum mismatch in data ${describeRun(bad)} at offset ${bad.offset}: the pages file is damaged`, { file: this.file });
    }
  }


  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close();
  }

  private open(): FileHandle {
    if (!this.fh) throw new ImageError(`${this.file}: page reader is closed`, { file: this.file });
    return this.fh;
  }
}
