// CRC-32 of byte ranges of an open file, read in pieces into one reused buffer.
import fs from 'node:fs';
import zlib from 'node:zlib';

const PIECE = 8 << 20;

export function crcOfFileRanges(fd: number, ranges: ReadonlyArray<readonly [number, number]>): number[] {
  const buf = Buffer.allocUnsafeSlow(PIECE);
  return ranges.map(([offset, length]) => {
    let crc = 0;
    for (let at = 0; at < length;) {
      const n = fs.readSync(fd, buf, 0, Math.min(PIECE, length - at), offset + at);
      if (n <= 0) throw new Error(`unexpected end of file at offset ${offset + at}`);
      crc = zlib.crc32(buf.subarray(0, n), crc);
      at += n;
    }
    return crc;
  });
}
