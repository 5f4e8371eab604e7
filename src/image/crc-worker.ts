// Worker thread body: CRC-32 on the second core, so checksumming page data overlaps the main
// thread's work. Two jobs: ranges of a shared buffer (dump), ranges of a file (verify).
import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { crcOfFileRanges } from './crc-file.js';
import zlib from 'node:zlib';

export type CrcRequest =
  | { id: number; sab: SharedArrayBuffer; offset: number; lengths: number[] }
  | { id: number; file: string; ranges: Array<[offset: number, length: number]> };
export interface CrcReply { id: number; crcs?: number[]; error?: string }

parentPort!.on('message', (req: CrcRequest) => {
  try {
    let crcs: number[];
    if ('sab' in req) {
      crcs = [];
      let at = req.offset;
      for (const len of req.lengths) {
        crcs.push(zlib.crc32(new Uint8Array(req.sab, at, len)));
        at += len;
      }
    } else {
      const fd = fs.openSync(req.file, 'r');
      try {
        crcs = crcOfFileRanges(fd, req.ranges);
      } finally {
        fs.closeSync(fd);
      }
    }
    parentPort!.postMessage({ id: req.id, crcs } satisfies CrcReply);
  } catch (err) {
    parentPort!.postMessage({ id: req.id, error: (err as Error).message } satisfies CrcReply);
  }
});
