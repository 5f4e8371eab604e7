// Unix sockets connected in pairs within the tree (socketpair(), or one end inherited): type,
// flags and the bytes or message waiting at each end. Both ends are made again with
// socketpair() in ckpt; what waited at an end is sent again by its peer. Bound, listening and
// externally connected unix sockets are not restored yet: the dump refuses them, naming them.
import { closeFd, fcntl, F_SETFL } from '../../sys/files.js';
import { MSG_DONTWAIT, MSG_PEEK, pullFd, recv, send, socketpair, unixSockets, type UnixSocketInfo } from '../../sys/sockets.js';
import type { FileKind, FileRecordBase } from './types.js';

const O_NONBLOCK = 0o4000;
const SOCK_STREAM = 1;
const TYPES: Record<number, string> = { 1: 'stream', 2: 'dgram', 5: 'seqpacket' };

export interface UnixFileRecord extends FileRecordBase {
  kind: 'unix';
  ino: number;
  peer: number;
  type: number;
  flags: number;
  /** Bytes (stream) or the one message (datagrams) waiting to be read at this end, base64. */
  queued: string;
}

/** Both ends of a pair ckpt made, by socket inode (the opener closes them when done). */
type RestoredPair = Record<string, number>;

export class UnsupportedUnixSocketError extends Error {}

export const unixSocketFiles: FileKind<UnixFileRecord> = {
  kind: 'unix',

  matches: ({ link, seen, stat }) => {
    if (!link.startsWith('socket:')) return false;
    let all = seen.get('unix-sockets') as Map<number, UnixSocketInfo> | undefined;
    if (!all) {
      all = unixSockets();
      seen.set('unix-sockets', all);
    }
    return all.has(Number(stat.ino));
  },

  async collect({ pid, fd, stat, fdinfo, seen }) {
    const all = seen.get('unix-sockets') as Map<number, UnixSocketInfo>;
    const s = all.get(Number(stat.ino))!;
    const what = `${TYPES[s.type] ?? `type ${s.type}`} unix socket${s.name ? ` ${s.name}` : ''}`;
    if (s.name !== undefined || s.peer === undefined || s.peer === 0) {
      throw new UnsupportedUnixSocketError(`unsupported fd ${fd}: ${what} (bound, listening or unconnected) in process ${pid}`);
    }
    const peer = all.get(s.peer);
    if (peer?.name !== undefined) {
      throw new UnsupportedUnixSocketError(`unsupported fd ${fd}: ${what} connected to ${peer.name} in process ${pid}`);
    }
    let queued: Buffer = Buffer.alloc(0);
    if (s.rqueue > 0) {
      const copy = pullFd(pid, fd);
      try {
        queued = recv(copy, s.type === SOCK_STREAM ? s.rqueue : 1 << 20, MSG_PEEK | MSG_DONTWAIT);
      } finally {
        closeFd(copy);
      }
      // A peek shows one message of a datagram socket: more queued bytes mean more messages.
      if (queued.length < s.rqueue) {
        throw new UnsupportedUnixSocketError(`unsupported fd ${fd}: ${what} with more than one message queued in process ${pid}`);
      }
    }
    return { ino: s.ino, peer: s.peer, type: s.type, flags: fdinfo.flags & O_NONBLOCK, queued: queued.toString('base64') };
  },

  async open(ctx, rec) {
    const key = `unix:${Math.min(rec.ino, rec.peer)}`;
    let pair = ctx.shared.get(key) as RestoredPair | undefined;
    if (!pair) {
      const [a, b] = socketpair(rec.type);
      pair = { [rec.ino]: a, [rec.peer]: b };
      ctx.shared.set(key, pair);
    }
    const fd = pair[rec.ino]!;
    // What waited at this end is sent again from the other one.
    if (rec.queued) send(pair[rec.peer]!, Buffer.from(rec.queued, 'base64'));
    fcntl(fd, F_SETFL, rec.flags & O_NONBLOCK);
    return fd;
  },
};
