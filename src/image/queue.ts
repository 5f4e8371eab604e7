import type { FileHandle } from 'node:fs/promises';
import PQueue from 'p-queue';
import { ImageError } from './errors.js';

/** Largest single write; bigger buffers are split so their pieces go out in parallel. */
const WRITE_PIECE = 16 << 20;
/** Most buffers in one writev (Linux IOV_MAX). */
const IOV_MAX = 1024;

const ROOM = Promise.resolve();

/** One queued write: buffers for consecutive bytes of one file, starting at position. */
interface Piece {
  position: number;
  length: number;
  bufs: Buffer[];
  started: boolean;
  onWritten: (bytes: number) => void;
  done: Promise<void>;
}

/** Writes all of bufs at position; writev may stop short and is then resumed where it stopped. */
async function writevAll(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let rest = bufs;
  while (rest.length > 0) {
    let { bytesWritten } = await fh.writev(rest, position);
    position += bytesWritten;
    let i = 0;
    while (i < rest.length && bytesWritten >= rest[i]!.length) bytesWritten -= rest[i++]!.length;
    rest = rest.slice(i);
    if (bytesWritten > 0) rest[0] = rest[0]!.subarray(bytesWritten);
  }
}

/**
 * The concurrent positional writers shared by all page stores of one image, bounded by
 * bytes in flight (not by task count) so the dumper never holds more memory than that.
 * While all writers are busy, further buffers for the bytes that follow a waiting write join
 * it (one writev): thousands of one-page runs then cost a few syscalls, not thousands of tasks.
 * The first failed write fails the whole image: every later wait reports it.
 */
export class WriteQueue {
  private readonly queue: PQueue;
  /** Per file, the last write queued and not started yet, which later bytes may join. */
  private readonly tails = new Map<string, Piece>();
  private inFlight = 0;
  failure: ImageError | undefined;

  constructor(
    concurrency: number,
    readonly maxInFlight: number,
  ) {
    this.queue = new PQueue({ concurrency });
  }

  /**
   * Queues buf for writing at position of file; resolves when all of it is written. The
   * caller must leave buf untouched until then. fh is a promise while the file is opening.
   * onWritten gets the byte count of each write done; buffers only join writes of the same file.
   */
  write(fh: FileHandle | Promise<FileHandle>, buf: Buffer, position: number, file: string, onWritten: (bytes: number) => void): Promise<void> {
    const pieces: Promise<void>[] = [];
    for (let at = 0; at < buf.length; at += WRITE_PIECE) {
      const part = buf.subarray(at, Math.min(at + WRITE_PIECE, buf.length));
      this.inFlight += part.length;
      const tail = this.tails.get(file);
      if (tail && !tail.started && tail.position + tail.length === position + at && tail.length + part.length <= WRITE_PIECE && tail.bufs.length < IOV_MAX) {
        tail.bufs.push(part);
        tail.length += part.length;
        pieces.push(tail.done);
      } else {
        pieces.push(this.start(fh, part, position + at, file, onWritten));
      }
    }
    return pieces.length === 1 ? pieces[0]! : Promise.all(pieces).then(() => undefined);
  }

  private start(fh: FileHandle | Promise<FileHandle>, buf: Buffer, position: number, file: string, onWritten: (bytes: number) => void): Promise<void> {
    const piece: Piece = { position, length: buf.length, bufs: [buf], started: false, onWritten, done: Promise.resolve() };
    this.tails.set(file, piece);
    piece.done = this.queue.add(async () => {
      piece.started = true;
      if (this.tails.get(file) === piece) this.tails.delete(file);
      try {
        // With the file already open this writev is issued right here, so the kernel copies
        // while the caller goes on (e.g. checksumming the same buffer).
        await writevAll(fh instanceof Promise ? await fh : fh, piece.bufs, piece.position);
        piece.onWritten(piece.length);
      } catch (err) {
        const failure = new ImageError(`${file}: write of ${piece.length} bytes at offset ${piece.position} failed: ${(err as Error).message}`, { file, cause: err });
        this.failure ??= failure;
        throw failure;
      } finally {
        this.inFlight -= piece.length;
      }
    });
    return piece.done;
  }

  /**
   * Resolves once fewer than maxInFlight bytes are queued; rejects with the image's first
   * write failure. Not async: with room to spare it costs no extra promise per page run.
   */
  room(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.inFlight < this.maxInFlight) return ROOM;
    return this.waitForRoom();
  }

  private async waitForRoom(): Promise<void> {
    while (this.inFlight >= this.maxInFlight && !this.failure) {
      await new Promise<void>((resolve) => this.queue.once('next', resolve));
    }
    if (this.failure) throw this.failure;
  }
}
