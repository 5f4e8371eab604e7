// Character devices that hold no per-open state worth saving (/dev/null, /dev/zero,
// /dev/urandom, ...), opened by path. Terminals are not of this kind: they have their own module.
import fs from 'node:fs';
import { O_CLOEXEC, type FileKind, type FileRecordBase } from './types.js';

/** Major numbers of terminals (tty, pty masters and slaves), whose state is more than a path. */
const TTY_MAJORS = new Set([4, 5, 136, 137, 138, 139, 140, 141, 142, 143, 128, 129, 130, 131, 132, 133, 134, 135]);

export interface DeviceFileRecord extends FileRecordBase {
  kind: 'device';
  path: string;
  flags: number;
  rdev: string;
}

const major = (rdev: bigint) => Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
const minor = (rdev: bigint) => Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));

export const devices: FileKind<DeviceFileRecord> = {
  kind: 'device',

  matches: ({ stat }) => stat.isCharacterDevice() && !TTY_MAJORS.has(major(stat.rdev)),

  async collect({ link, stat, fdinfo }) {
    return { path: link, flags: fdinfo.flags & ~O_CLOEXEC, rdev: `${major(stat.rdev)}:${minor(stat.rdev)}` };
  },

  async open(_ctx, rec) {
    return fs.openSync(rec.path, rec.flags | O_CLOEXEC);
  },
};
