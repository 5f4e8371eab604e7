// CRC-32 of page data. Buffers over a SharedArrayBuffer are checksummed in a worker thread
// (one per process, started on first use, not keeping the process alive); others inline.
import { Worker } from 'node:worker_threads';
import zlib from 'node:zlib';
import type { CrcReply, CrcRequest } from './crc-worker.js';

let worker: Worker | undefined;
let nextId = 0;
const waiting = new Map<number, { resolve: (crcs: number[]) => void; reject: (e: Error) => void }>();

function crcWorker(): Worker {
  if (worker) return worker;
  const w = new Worker(new URL('./crc-worker.js', import.meta.url));
  w.unref();
  w.on('message', (reply: CrcReply) => {
    const p = waiting.get(reply.id);
    waiting.delete(reply.id);
    p?.resolve(reply.crcs);
    if (waiting.size === 0) w.unref();
  });
  w.on('error', (err) => {
    for (const p of waiting.values()) p.reject(err);
    waiting.clear();
    worker = undefined;
  });
  worker = w;
  return w;
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
  const w = crcWorker();
  const id = nextId++;
  w.ref();
  return new Promise((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    w.postMessage({ id, sab: buf.buffer as SharedArrayBuffer, offset: buf.byteOffset, lengths: [...lengths] } satisfies CrcRequest);
  });
}
