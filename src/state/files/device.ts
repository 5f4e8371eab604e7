// Character devices that hold no per-open state worth saving (/dev/null, /dev/zero,
// /dev/urandom, ...), opened by path. Terminals are not of this kind: they have their own module.
import fs from 'node:fs';
import { isTerminal, major, minor } from './tty.js';
import { O_CLOEXEC, type FileKind, type FileRecordBase } from './types.js';

export interface DeviceFileRecord extends FileRecordBase {
  kind: 'device';
  path: string;
  flags: number;
  rdev: string;
}

export const devices: FileKind<DeviceFileRecord> = {
  kind: 'device',

  matches: ({ stat }) => stat.isCharacterDevice() && !isTerminal(stat.rdev),

  async collect({ link, stat, fdinfo }) {
    return { path: link, flags: fdinfo.flags & ~O_CLOEXEC, rdev: `${major(stat.rdev)}:${minor(stat.rdev)}` };
  },

  unavailable(rec) {
    const st = fs.statSync(rec.path, { throwIfNoEntry: false, bigint: true });
    if (!st) return `device ${rec.path} does not exist here`;
    const rdev = `${major(st.rdev)}:${minor(st.rdev)}`;
    return st.isCharacterDevice() && rdev === rec.rdev ? undefined : `${rec.path} is not device ${rec.rdev} here`;
  },

  async open(_ctx, rec) {
    return fs.openSync(rec.path, rec.flags | O_CLOEXEC);
  },
};
