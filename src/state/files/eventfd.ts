// eventfd: its counter and its flags (semaphore mode, non-blocking).
import fs from 'node:fs';
import { eventfd } from '../../sys/files.js';
import type { FileKind, FileRecordBase } from './types.js';

const EFD_SEMAPHORE = 1;
const O_NONBLOCK = 0o4000;

export interface EventfdFileRecord extends FileRecordBase {
  kind: 'eventfd';
  /** The counter, as a decimal string (64 bits). */
  count: string;
  semaphore: boolean;
  flags: number;
}

export const eventfds: FileKind<EventfdFileRecord> = {
  kind: 'eventfd',

  matches: ({ link }) => link === 'anon_inode:[eventfd]',

  async collect({ fdinfo, pid, fd }) {
    const count = fdinfo.extra['eventfd-count'];
    if (count === undefined) throw new Error(`/proc/${pid}/fdinfo/${fd}: no eventfd-count`);
    return {
      count: BigInt(`0x${count.trim()}`).toString(),
      semaphore: fdinfo.extra['eventfd-semaphore']?.trim() === '1',
      flags: fdinfo.flags & O_NONBLOCK,
    };
  },

  async open(_ctx, rec) {
    const fd = eventfd((rec.semaphore ? EFD_SEMAPHORE : 0) | (rec.flags & O_NONBLOCK));
    const count = BigInt(rec.count);
    if (count > 0n) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(count, 0);
      fs.writeSync(fd, b);
    }
    return fd;
  },
};
