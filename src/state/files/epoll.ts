// epoll: every registered target with its events and data. Targets are named by the open file
// they watch (resolved through the process's descriptor table after the dump of its table).
//
// The kernel knows each target by its open file and the descriptor number it was added under,
// and epoll_ctl(MOD/DEL) finds it by that number: so the targets are added from inside the
// restored process, under its own numbers, once its descriptors are in place.
import type { RemoteThread } from '../../sys/remote.js';
import { epollCreate } from '../../sys/sockets.js';
import type { FdEntry, FileKind, FileRecordBase } from './types.js';

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

  async open(_ctx, rec) {
    for (const t of rec.targets) {
      if (t.file === undefined) throw new Error(`epoll target fd ${t.tfd} is not in its process's descriptor table`);
    }
    return epollCreate();
  },
};

const EPOLL_CTL_ADD = 1;

/**
 * Adds the targets of the epoll at descriptor epfd of a restored process, if its table holds
 * every target under the number it was added with; returns whether it did.
 */
export function addEpollTargets(remote: RemoteThread, put: (data: Buffer) => bigint, epfd: number, rec: EpollFileRecord, table: FdEntry[]): boolean {
  if (!rec.targets.every((t) => table.some((e) => e.fd === t.tfd && e.file === t.file))) return false;
  for (const t of rec.targets) {
    const ev = Buffer.alloc(12); // struct epoll_event is packed on x86_64: u32 events, u64 data
    ev.writeUInt32LE(t.events >>> 0, 0);
    ev.writeBigUInt64LE(BigInt(t.data), 4);
    remote.call('epoll_ctl', epfd, EPOLL_CTL_ADD, t.tfd, put(ev));
  }
  return true;
}
