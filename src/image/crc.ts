// CRC-32 of page data on two cores. Buffers over a SharedArrayBuffer are checksummed in a
// worker thread (one per process, started on first use, never keeping the process alive);
// file ranges are split between the worker and the calling thread.
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import zlib from 'node:zlib';
import { crcOfFileRanges } from './crc-file.js';
import type { CrcReply, CrcRequest } from './crc-worker.js';

let worker: Worker | undefined;
let nextId = 0;
const waiting = new Map<number, { resolve: (crcs: number[]) => void; reject: (e: Error) => void }>();

function ask(req: Omit<CrcRequest, 'id'>): Promise<number[]> {
  if (!worker) {
    const w = new Worker(new URL('./crc-worker.js', import.meta.url));
    w.on('message', (reply: CrcReply) => {
      const p = waiting.get(reply.id);
      waiting.delete(reply.id);
      if (reply.error !== undefined) p?.reject(new Error(reply.error));
      else p?.resolve(reply.crcs!);
      if (waiting.size === 0) w.unref();
    });
    w.on('error', (err) => {
      for (const p of waiting.values()) p.reject(err);
      waiting.clear();
      worker = undefined;
    });
    worker = w;
  }
  const id = nextId++;
  worker.ref();
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    worker!.postMessage({ id, ...req });
  });
}

/** Checksums of consecutive pieces of buf (lengths in bytes). */
export function crc32s(buf: Buffer, lengths: readonly number[]): Promise<number[]> | number[] {
  if (!(buf.buffer instanceof SharedArrayBuffer)) {
    const out: number[] = [];
    let at = 0;
    for (const len of lengths) {
      out.push(zlib.crc32(buf.subarray(at, at + len)));
      at += len;
    }
    return out;
  }
  return ask({ sab: buf.buffer, offset: buf.byteOffset, lengths: [...lengths] });
}

/** Small files are not worth a second thread. */
const SPLIT_ABOVE = 32 << 20;

/** Checksums of byte ranges of a file; large ones computed half here, half in the worker. */
export async function crc32sOfFile(file: string, ranges: ReadonlyArray<readonly [number, number]>): Promise<number[]> {
  const total = ranges.reduce((s, [, len]) => s + len, 0);
  let split = 0;
  if (total > SPLIT_ABOVE) {
    for (let bytes = 0; split < ranges.length && bytes < total / 2; split++) bytes += ranges[split]![1];
  }
  const theirs = split > 0 ? ask({ file, ranges: ranges.slice(0, split).map(([o, l]) => [o, l]) }) : Promise.resolve([]);
  const fd = fs.openSync(file, 'r');
  let mine: number[];
  try {
    mine = crcOfFileRanges(fd, ranges.slice(split));
  } finally {
    fs.closeSync(fd);
  }
  return [...(await theirs), ...mine];
}
