// pidfd: a descriptor of a process. One of the tree refers to the restored process (same PID);
// one of another process is opened again on that PID.
import { pidfdOpen } from '../../sys/sockets.js';
import type { FileKind, FileRecordBase } from './types.js';

const O_NONBLOCK = 0o4000;

export interface PidfdFileRecord extends FileRecordBase {
  kind: 'pidfd';
  pid: number;
  flags: number;
}

export class UnsupportedPidfdError extends Error {}

export const pidfds: FileKind<PidfdFileRecord> = {
  kind: 'pidfd',

  matches: ({ link }) => link === 'anon_inode:[pidfd]',

  async collect({ fdinfo, pid, fd }) {
    const target = Number(fdinfo.extra.Pid);
    if (!(target > 0)) throw new UnsupportedPidfdError(`unsupported fd ${fd}: pidfd of a process that has ended, in process ${pid}`);
    return { pid: target, flags: fdinfo.flags & O_NONBLOCK };
  },

  async open(_ctx, rec) {
    return pidfdOpen(rec.pid, rec.flags & O_NONBLOCK);
  },
};
