// Worker thread body: CRC-32 of ranges of a shared buffer, so that checksumming page data runs
// on the second core while the main thread reads memory.
import { parentPort } from 'node:worker_threads';
import zlib from 'node:zlib';

export interface CrcRequest { id: number; sab: SharedArrayBuffer; offset: number; lengths: number[] }
export interface CrcReply { id: number; crcs: number[] }

parentPort!.on('message', (req: CrcRequest) => {
  const crcs: number[] = [];
  let at = req.offset;
  for (const len of req.lengths) {
    crcs.push(zlib.crc32(new Uint8Array(req.sab, at, len)));
    at += len;
  }
  parentPort!.postMessage({ id: req.id, crcs } satisfies CrcReply);
});
