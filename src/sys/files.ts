// File helpers Node's fs does not offer.
import { trySyscall, SysError } from './libc.js';

const NR_LSEEK = 8;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;

/** The [start, end) byte ranges of fd within [from, to) that hold data (holes skipped). */
export function dataExtents(fd: number, from: bigint, to: bigint): Array<[bigint, bigint]> {
  const out: Array<[bigint, bigint]> = [];
  let pos = from;
  while (pos < to) {
    const data = trySyscall(NR_LSEEK, fd, pos, SEEK_DATA);
    if (data === -ENXIO) break; // no data after pos
    if (data < 0) throw new SysError('lseek(SEEK_DATA)', -data);
    if (BigInt(data) >= to) break;
    const hole = trySyscall(NR_LSEEK, fd, data, SEEK_HOLE);
    if (hole < 0) throw new SysError('lseek(SEEK_HOLE)', -hole);
    const end = BigInt(hole) < to ? BigInt(hole) : to;
    out.push([BigInt(data), end]);
    pos = end;
  }
  return out;
}
