// epoll: every registered target with its events and data. Targets are named by the open file
// they watch (resolved through the process's descriptor table after the dump of its table).
import { epollAdd, epollCreate } from '../../sys/sockets.js';
import type { FileKind, FileRecordBase } from './types.js';

export interface EpollFileRecord extends FileRecordBase {
  kind: 'epoll';
  /** tfd: the target's descriptor number in the dumped process; file: its open file's id. */
  targets: Array<{ tfd: number; file?: number; events: number; data: string }>;
}

export const epolls: FileKind<EpollFileRecord> = {
  kind: 'epoll',

  matches: ({ link }) => link === 'anon_inode:[eventpoll]',

  async collect({ fdinfo }) {
    const targets = fdinfo.lines.filter((l) => l.startsWith('tfd:')).map((l) => {
      const m = /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)/.exec(l);
      if (!m) throw new Error(`cannot read epoll target "${l}"`);
      return { tfd: Number(m[1]), events: parseInt(m[2], 16), data: `0x${BigInt(`0x${m[3]}`).toString(16)}` };
    });
    return { targets };
  },

  async open(ctx, rec) {
    const epfd = epollCreate();
    for (const t of rec.targets) {
      if (t.file === undefined) throw new Error(`epoll target fd ${t.tfd} is not in its process's descriptor table`);
      epollAdd(epfd, await ctx.fdOf(t.file), t.events, BigInt(t.data));
    }
    return epfd;
  },
};
