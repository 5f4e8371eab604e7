import { chmod, lstat, mkdir, readFile, rename, rm, rmdir, stat } from 'node:fs/promises';
import { release } from 'node:os';
import path from 'node:path';
import { ImageError } from './errors.js';
import { DIR_MODE, createFile, fsyncDir, sha256, writeAll, writeWholeFile } from './files.js';
import { MANIFEST, MANIFEST_TMP, checkFileName, checkId, recordFileName } from './names.js';
import { toolName } from './package.js';
import { PageWriter, type PageStoreHost } from './pages.js';
import { WriteQueue } from './queue.js';
import { RECORD_FORMAT, validateManifest, validateRecord } from './schemas.js';
import { IMAGE_FORMAT, PAGE_SIZE, machineArch, type Manifest, type ManifestFile } from './types.js';

export interface ImageWriterOptions {
  /** Parent image of an incremental dump, relative to dir; it must hold a manifest.json. */
  parent?: string;
  /** Replace an image already in dir (its manifest goes first, then its files). */
  overwrite?: boolean;
  /** Concurrent page writes (default 4). */
  concurrency?: number;
  /** Bound on page bytes handed to the writer and not yet written (default 64 MiB). */
  maxInFlight?: number;
}

export interface CommitOptions {
  root_pid: number;
  meta?: Record<string, unknown>;
}

type State = 'open' | 'committing' | 'committed' | 'failed' | 'aborted';

/**
 * Writes one image directory. Nothing makes it an image until commit() writes manifest.json,
 * last and atomically; abort() (or a crash) leaves no manifest, so readers refuse the rest.
 * One writer per directory at a time.
 */
export class ImageWriter {
  readonly dir: string;
  private readonly parent: string | undefined;
  private readonly queue: WriteQueue;
  private readonly createdDir: boolean;
  /** What the manifest will list. */
  private readonly listed = new Map<string, ManifestFile>();
  /** Names taken by a write started or done; refuses a second write of one name. */
  private readonly names = new Set<string>();
  /** Files put on disk, for abort(). */
  private readonly created = new Set<string>();
  private readonly pageWriters = new Map<number, PageWriter>();
  private readonly pending = new Set<Promise<unknown>>();
  private failure: unknown;
  private state: State = 'open';

  private constructor(dir: string, parent: string | undefined, createdDir: boolean, queue: WriteQueue) {
    this.dir = dir;
    this.parent = parent;
    this.createdDir = createdDir;
    this.queue = queue;
  }

  /** Creates dir (0700) or takes an existing one; refuses one that holds an image unless opts.overwrite. */
  static async create(dir: string, opts: ImageWriterOptions = {}): Promise<ImageWriter> {
    const concurrency = opts.concurrency ?? 4;
    const maxInFlight = opts.maxInFlight ?? 64 << 20;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new ImageError(`concurrency ${concurrency} must be a positive integer`);
    if (!Number.isSafeInteger(maxInFlight) || maxInFlight < 1) throw new ImageError(`maxInFlight ${maxInFlight} must be a positive integer`);
    if (opts.parent !== undefined) await checkParent(dir, opts.parent);
    let createdDir = false;
    try {
      createdDir = (await mkdir(dir, { recursive: true, mode: DIR_MODE })) !== undefined;
    } catch (err) {
      throw new ImageError(`${dir}: cannot create image directory: ${(err as Error).message}`, { file: dir, cause: err });
    }
    if (!(await stat(dir)).isDirectory()) throw new ImageError(`${dir}: not a directory`, { file: dir });
    await chmod(dir, DIR_MODE);
    const manifest = path.join(dir, MANIFEST);
    if (await exists(manifest)) {
      if (!opts.overwrite) throw new ImageError(`${dir}: already holds an image (manifest.json); pass overwrite to replace it`, { file: manifest });
      await removeImage(dir);
    }
    return new ImageWriter(dir, opts.parent, createdDir, new WriteQueue(concurrency, maxInFlight));
  }

  /**
   * Writes <kind>-<id>.json (or <kind>.json for id null), with "$format": 1 added, after
   * validating it against schemas/image/<kind>.schema.json as a reader will see it.
   * 64-bit values must be strings (hex()).
   */
  async writeRecord(kind: string, id: number | null, data: object): Promise<void> {
    this.checkOpen();
    const name = recordFileName(kind, id);
    if (kind === 'pagemap') throw new ImageError(`${name}: pagemap records are written by pages(pid).close()`, { file: name });
    this.take(name);
    let text: string;
    try {
      text = JSON.stringify({ $format: RECORD_FORMAT, ...data }, null, 2) + '\n';
    } catch (err) {
      throw new ImageError(`${name}: cannot be written as JSON: ${(err as Error).message} (store 64-bit values with hex())`, { file: name, cause: err });
    }
    await this.track(this.storeRecord(name, kind, JSON.parse(text), text));
  }

  /** Writes a binary file (e.g. "xsave-<tid>.img"); the manifest keeps its sha256. */
  async writeBlob(name: string, data: Buffer): Promise<void> {
    this.checkOpen();
    checkFileName(name);
    if (name.endsWith('.json') || /^pages-\d+\.img$/.test(name)) {
      throw new ImageError(`${name}: reserved name (records are *.json, page data pages-<pid>.img)`, { file: name });
    }
    this.take(name);
    await this.track(this.storeFile(name, data));
  }

  /** The page store of one process (the same one until it is closed). */
  pages(pid: number): PageWriter {
    this.checkOpen();
    checkId(pid);
    if (pid === 0) throw new ImageError('invalid pid 0');
    const existing = this.pageWriters.get(pid);
    if (existing) {
      if (existing.closed) throw new ImageError(`pages of pid ${pid} are already closed`);
      return existing;
    }
    const pw = new PageWriter(this.host(), pid);
    this.take(pw.file);
    this.pageWriters.set(pid, pw);
    return pw;
  }

  /**
   * Waits for every write, closes open page stores, then writes manifest.json atomically
   * (temp file, fsync, rename, fsync of the directory). Returns the manifest.
   */
  async commit(opts: CommitOptions): Promise<Manifest> {
    this.checkOpen();
    this.state = 'committing';
    try {
      await Promise.allSettled([...this.pending]);
      await Promise.all([...this.pageWriters.values()].map((pw) => pw.close()));
      if (this.failure !== undefined) throw new ImageError(`${this.dir}: not committed: a write failed: ${(this.failure as Error).message}`, { file: this.dir, cause: this.failure });
      const files: Record<string, ManifestFile> = {};
      for (const name of [...this.listed.keys()].sort()) files[name] = this.listed.get(name)!;
      const manifest: Manifest = {
        format: IMAGE_FORMAT,
        arch: machineArch(),
        kernel: release(),
        tool: toolName(),
        page_size: PAGE_SIZE,
        created: new Date().toISOString(),
        root_pid: opts.root_pid,
        ...(this.parent === undefined ? {} : { parent: this.parent }),
        files,
        meta: opts.meta ?? {},
      };
      validateManifest(manifest, path.join(this.dir, MANIFEST));
      // Directory entries of every file must be durable before the manifest that lists them.
      await fsyncDir(this.dir);
      const tmp = path.join(this.dir, MANIFEST_TMP);
      const fh = await createFile(tmp);
      this.created.add(MANIFEST_TMP);
      try {
        await writeAll(fh, Buffer.from(JSON.stringify(manifest, null, 2) + '\n'), 0);
        await fh.sync();
      } finally {
        await fh.close();
      }
      this.created.add(MANIFEST);
      await rename(tmp, path.join(this.dir, MANIFEST));
      this.created.delete(MANIFEST_TMP);
      await fsyncDir(this.dir);
      this.state = 'committed';
      return manifest;
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
  }

  /**
   * Removes every file this writer made (the manifest first, should commit have got that
   * far) and the directory if this writer created it and nothing else is in it.
   */
  async abort(): Promise<void> {
    if (this.state === 'committed') throw new ImageError(`${this.dir}: image is committed; remove it instead of aborting`, { file: this.dir });
    await this.removeAll();
  }

  /**
   * Takes back a committed image (its dump was interrupted as it ended): the manifest goes
   * first, so the image reads as incomplete at every moment, then everything else.
   */
  async withdraw(): Promise<void> {
    if (this.state !== 'committed') throw new ImageError(`${this.dir}: only a committed image can be withdrawn`, { file: this.dir });
    await this.removeAll();
  }

  private async removeAll(): Promise<void> {
    if (this.state === 'aborted') return;
    this.state = 'aborted';
    await Promise.allSettled([...this.pending]);
    await Promise.all([...this.pageWriters.values()].map((pw) => pw.discard()));
    if (this.created.has(MANIFEST)) {
      await rm(path.join(this.dir, MANIFEST), { force: true });
      this.created.delete(MANIFEST);
    }
    await Promise.all([...this.created].map((name) => rm(path.join(this.dir, name), { force: true })));
    this.created.clear();
    if (this.createdDir) {
      await rmdir(this.dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOTEMPTY' && err.code !== 'ENOENT') throw err;
      });
    }
  }

  private checkOpen(): void {
    if (this.state !== 'open') throw new ImageError(`${this.dir}: image writer is ${this.state}`, { file: this.dir });
  }

  private take(name: string): void {
    if (this.names.has(name)) throw new ImageError(`${name}: written twice`, { file: name });
    this.names.add(name);
  }

  private track<T>(op: Promise<T>): Promise<T> {
    this.pending.add(op);
    op.then(
      () => this.pending.delete(op),
      (err: unknown) => {
        this.pending.delete(op);
        this.failure ??= err;
      },
    );
    return op;
  }

  private async storeRecord(name: string, kind: string, data: unknown, text: string): Promise<void> {
    validateRecord(kind, data, name);
    await this.storeFile(name, Buffer.from(text));
  }

  private async storeFile(name: string, data: Buffer): Promise<void> {
    await writeWholeFile(path.join(this.dir, name), data, () => this.created.add(name));
    this.listed.set(name, { size: data.length, sha256: sha256(data) });
  }

  private host(): PageStoreHost {
    return {
      dir: this.dir,
      queue: this.queue,
      created: (name) => void this.created.add(name),
      list: (name, entry) => void this.listed.set(name, entry),
      storeRecord: (name, kind, data, text) => this.storeRecord(name, kind, data, text),
    };
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

async function checkParent(dir: string, parent: string): Promise<void> {
  if (typeof parent !== 'string' || parent === '' || path.isAbsolute(parent) || parent.includes('\0')) {
    throw new ImageError(`parent image ${JSON.stringify(parent)} must be a path relative to the image directory`);
  }
  const manifest = path.join(dir, parent, MANIFEST);
  if (!(await exists(manifest))) throw new ImageError(`parent image ${parent} (relative to ${dir}) has no manifest.json`, { file: manifest });
}

/** Unmakes an old image: its manifest first, so it is never complete-looking with files missing. */
async function removeImage(dir: string): Promise<void> {
  const manifest = path.join(dir, MANIFEST);
  let names: string[] = [];
  try {
    const old = JSON.parse(await readFile(manifest, 'utf8')) as { files?: Record<string, unknown> };
    names = Object.keys(old.files ?? {}).filter((name) => {
      try {
        checkFileName(name);
        return name !== MANIFEST;
      } catch {
        return false;
      }
    });
  } catch {
    // An unreadable old manifest lists nothing we could safely remove; removing it is enough.
  }
  await rm(manifest, { force: true });
  await fsyncDir(dir);
  await Promise.all([...names, MANIFEST_TMP].map((name) => rm(path.join(dir, name), { force: true })));
}
