import { createHash } from 'node:crypto';
import { lstat, stat } from 'node:fs/promises';
import path from 'node:path';
import { ImageError } from './errors.js';
import { openForRead, parseJson, readExactly } from './files.js';
import { MANIFEST, checkFileName, pagemapFileName, pagesFileName, parseRecordFileName, recordFileName } from './names.js';
import { PageReader, checkPagemap } from './pages.js';
import { validateManifest, validateRecord } from './schemas.js';
import { IMAGE_FORMAT, type Manifest, type PageEntry, type Pagemap } from './types.js';

const HASH_PIECE = 8 << 20;

/** The first failure in the order of `items` (not of completion), so messages do not depend on timing. */
async function allInOrder<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = await Promise.allSettled(items.map(fn));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return results.map((r) => (r as PromiseFulfilledResult<R>).value);
}

async function sha256File(file: string): Promise<{ size: number; sha256: string }> {
  const { fh, stat: st } = await openForRead(file);
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(Math.min(HASH_PIECE, st.size));
    for (let pos = 0; pos < st.size; pos += buf.length) {
      const n = Math.min(buf.length, st.size - pos);
      await readExactly(fh, buf, 0, n, pos, file);
      hash.update(buf.subarray(0, n));
    }
    return { size: st.size, sha256: hash.digest('hex') };
  } finally {
    await fh.close();
  }
}

/**
 * A complete image, checked on open: manifest present, valid and of a format we read, every
 * listed file present with its size, every record matching its checksum and its schema, every
 * pagemap consistent with its pages file. Files the manifest does not list are never read.
 * Page contents are checked by verify() (all) and PageReader.read() (per run).
 */
export class ImageReader {
  readonly dir: string;
  readonly manifest: Manifest;
  private readonly records: Map<string, unknown>;
  private readonly pagemaps: Map<number, PageEntry[]>;
  private readonly readers = new Set<PageReader>();

  private constructor(dir: string, manifest: Manifest, records: Map<string, unknown>, pagemaps: Map<number, PageEntry[]>) {
    this.dir = dir;
    this.manifest = manifest;
    this.records = records;
    this.pagemaps = pagemaps;
  }

  static async open(dir: string): Promise<ImageReader> {
    try {
      if (!(await stat(dir)).isDirectory()) throw new ImageError(`${dir}: not a directory`, { file: dir });
    } catch (err) {
      if (err instanceof ImageError) throw err;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ImageError(`${dir}: image directory does not exist`, { file: dir, cause: err });
      throw new ImageError(`${dir}: cannot open image directory: ${(err as Error).message}`, { file: dir, cause: err });
    }
    const manifest = await readManifest(dir);
    const names = Object.keys(manifest.files).sort();
    await allInOrder(names, (name) => checkListedFile(dir, name, manifest.files[name]!.size));

    const records = new Map<string, unknown>();
    const recordNames = names.filter((name) => parseRecordFileName(name) !== null);
    const parsed = await allInOrder(recordNames, (name) => readRecord(dir, name, manifest));
    recordNames.forEach((name, i) => records.set(name, parsed[i]));

    const pagemaps = new Map<number, PageEntry[]>();
    for (const name of names) {
      const entry = manifest.files[name]!;
      const file = path.join(dir, name);
      const pages = /^pages-(\d+)\.img$/.exec(name);
      if (entry.checked_by !== undefined && (!pages || entry.checked_by !== pagemapFileName(Number(pages[1])))) {
        throw new ImageError(`${path.join(dir, MANIFEST)}: ${name} is said to be checked by ${entry.checked_by}, which does not describe it`, { file: path.join(dir, MANIFEST) });
      }
      if (pages && entry.checked_by === undefined) {
        throw new ImageError(`${path.join(dir, MANIFEST)}: ${name} has no pagemap to check it by`, { file: path.join(dir, MANIFEST) });
      }
      const rec = parseRecordFileName(name);
      if (rec?.kind !== 'pagemap') continue;
      if (rec.id === null) throw new ImageError(`${file}: a pagemap needs a pid in its name`, { file });
      const pagesName = pagesFileName(rec.id);
      const pagesEntry = manifest.files[pagesName];
      if (!pagesEntry) throw new ImageError(`${file}: its pages file ${pagesName} is not in manifest.json`, { file });
      pagemaps.set(rec.id, checkPagemap(records.get(name) as Pagemap, rec.id, file, pagesName, pagesEntry.size));
    }
    return new ImageReader(dir, manifest, records, pagemaps);
  }

  /** Ids of the records "<kind>-<id>.json", ascending ("<kind>.json" is found by has(kind)). */
  list(kind: string): number[] {
    const ids: number[] = [];
    for (const name of this.records.keys()) {
      const rec = parseRecordFileName(name)!;
      if (rec.kind === kind && rec.id !== null) ids.push(rec.id);
    }
    return ids.sort((a, b) => a - b);
  }

  has(kind: string, id: number | null = null): boolean {
    return this.records.has(recordFileName(kind, id));
  }

  /** A record, already checked against its checksum and schema when the image was opened; a fresh copy on each call. */
  async record<T = unknown>(kind: string, id: number | null = null): Promise<T> {
    const name = recordFileName(kind, id);
    if (!this.records.has(name)) throw new ImageError(`${path.join(this.dir, name)}: no such record in the image`, { file: path.join(this.dir, name) });
    return structuredClone(this.records.get(name)) as T;
  }

  /** A binary file of the image, checked against its sha256. */
  async blob(name: string): Promise<Buffer> {
    checkFileName(name);
    const file = path.join(this.dir, name);
    const listed = this.manifest.files[name];
    if (!listed || listed.sha256 === undefined || parseRecordFileName(name) !== null) {
      throw new ImageError(`${file}: no such blob in the image`, { file });
    }
    const { fh } = await openForRead(file);
    let data: Buffer;
    try {
      data = await fh.readFile();
    } finally {
      await fh.close();
    }
    if (data.length !== listed.size) throw new ImageError(`${file}: ${data.length} bytes, manifest.json says ${listed.size}`, { file });
    if (createHash('sha256').update(data).digest('hex') !== listed.sha256) throw new ImageError(`${file}: sha256 mismatch: damaged or changed since the dump`, { file });
    return data;
  }

  /** Pids that have pages in this image. */
  pids(): number[] {
    return [...this.pagemaps.keys()].sort((a, b) => a - b);
  }

  /** The pages of one process. close() the reader (or this ImageReader) when done. */
  async pages(pid: number): Promise<PageReader> {
    const entries = this.pagemaps.get(pid);
    if (!entries) throw new ImageError(`${this.dir}: no pages for pid ${pid} (${pagemapFileName(pid)} is not in the image)`, { file: this.dir });
    const name = pagesFileName(pid);
    const file = path.join(this.dir, name);
    const { fh, stat: st } = await openForRead(file);
    const size = this.manifest.files[name]!.size;
    if (st.size !== size) {
      await fh.close();
      throw new ImageError(`${file}: ${st.size} bytes, manifest.json says ${size}`, { file });
    }
    const reader = new PageReader(pid, file, entries, size, fh);
    this.readers.add(reader);
    return reader;
  }

  /**
   * Reads every file the manifest lists and checks it: sha256 of whole files, CRC-32 of each
   * data run of pages files. Throws one ImageError naming every damaged file.
   */
  async verify(): Promise<void> {
    const problems: ImageError[] = [];
    for (const name of Object.keys(this.manifest.files).sort()) {
      const listed = this.manifest.files[name]!;
      const file = path.join(this.dir, name);
      try {
        if (listed.sha256 !== undefined) {
          const actual = await sha256File(file);
          if (actual.size !== listed.size) throw new ImageError(`${file}: ${actual.size} bytes, manifest.json says ${listed.size}`, { file });
          if (actual.sha256 !== listed.sha256) throw new ImageError(`${file}: sha256 mismatch: damaged or changed since the dump`, { file });
        } else {
          const reader = await this.pages(Number(/^pages-(\d+)\.img$/.exec(name)![1]));
          try {
            await reader.verify();
          } finally {
            await reader.close();
            this.readers.delete(reader);
          }
        }
      } catch (err) {
        if (!(err instanceof ImageError)) throw err;
        problems.push(err);
      }
    }
    if (problems.length === 1) throw problems[0]!;
    if (problems.length > 1) {
      throw new ImageError(`${this.dir}: ${problems.length} damaged files: ${problems.map((p) => p.message).join('; ')}`, { file: problems[0]!.file });
    }
  }

  /** Closes every PageReader handed out. */
  async close(): Promise<void> {
    await Promise.all([...this.readers].map((r) => r.close()));
    this.readers.clear();
  }
}

async function readManifest(dir: string): Promise<Manifest> {
  const file = path.join(dir, MANIFEST);
  let text: string;
  try {
    const { fh } = await openForRead(file);
    try {
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as { cause?: NodeJS.ErrnoException }).cause?.code === 'ENOENT') {
      throw new ImageError(`${dir}: incomplete image: no manifest.json`, { file, cause: err });
    }
    throw err;
  }
  const data = parseJson(text, file);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ImageError(`${file}: not a JSON object`, { file });
  const format = (data as { format?: unknown }).format;
  if (format !== IMAGE_FORMAT) {
    const newer = typeof format === 'number' && format > IMAGE_FORMAT;
    throw new ImageError(
      `${file}: image format ${JSON.stringify(format)} ${newer ? 'is newer than this ckpt reads' : 'is not supported'} (this ckpt reads format ${IMAGE_FORMAT})`,
      { file },
    );
  }
  validateManifest(data, file);
  return data as Manifest;
}

async function checkListedFile(dir: string, name: string, size: number): Promise<void> {
  checkFileName(name);
  const file = path.join(dir, name);
  let st;
  try {
    st = await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ImageError(`${file}: missing (listed in manifest.json)`, { file, cause: err });
    throw new ImageError(`${file}: ${(err as Error).message}`, { file, cause: err });
  }
  if (!st.isFile()) throw new ImageError(`${file}: not a regular file`, { file });
  if (st.size !== size) throw new ImageError(`${file}: ${st.size} bytes, manifest.json says ${size}`, { file });
}

async function readRecord(dir: string, name: string, manifest: Manifest): Promise<unknown> {
  const file = path.join(dir, name);
  const listed = manifest.files[name]!;
  if (listed.sha256 === undefined) throw new ImageError(`${path.join(dir, MANIFEST)}: record ${name} has no sha256`, { file: path.join(dir, MANIFEST) });
  const { fh } = await openForRead(file);
  let bytes: Buffer;
  try {
    bytes = await fh.readFile();
  } finally {
    await fh.close();
  }
  if (createHash('sha256').update(bytes).digest('hex') !== listed.sha256) throw new ImageError(`${file}: sha256 mismatch: damaged or changed since the dump`, { file });
  const data = parseJson(bytes.toString('utf8'), file);
  validateRecord(parseRecordFileName(name)!.kind, data, file);
  return data;
}
