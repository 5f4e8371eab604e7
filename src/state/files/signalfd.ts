// signalfd: the set of signals it reads, and its flags.
import { signalfd } from '../../sys/files.js';
import type { FileKind, FileRecordBase } from './types.js';
import { hex, parseHex } from '../../image/hex.js';

const O_NONBLOCK = 0o4000;

export interface SignalfdFileRecord extends FileRecordBase {
  kind: 'signalfd';
  mask: string;
  flags: number;
}

export const signalfds: FileKind<SignalfdFileRecord> = {
  kind: 'signalfd',

  matches: ({ link }) => link === 'anon_inode:[signalfd]',

  async collect({ fdinfo, pid, fd }) {
    const mask = fdinfo.extra.sigmask;
    if (mask === undefined) throw new Error(`/proc/${pid}/fdinfo/${fd}: no sigmask`);
    return { mask: hex(BigInt(`0x${mask.trim()}`)), flags: fdinfo.flags & O_NONBLOCK };
  },

  async open(_ctx, rec) {
    return signalfd(parseHex(rec.mask), rec.flags & O_NONBLOCK);
  },
};
