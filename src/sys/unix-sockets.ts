// Unix sockets seen from outside: every socket of the network namespace with its name, peer,
// pending connections and queue (sock_diag over netlink).
import { syscall, trySyscall } from './libc.js';
import { AF } from './sockets.js';

const NR = { socket: 41, sendto: 44, recvfrom: 45, close: 3 };
const O_CLOEXEC = 0o2000000;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const UDIAG_SHOW = { NAME: 1, VFS: 2, PEER: 4, ICONS: 8, RQLEN: 0x10 };
const UNIX_DIAG = { NAME: 0, VFS: 1, PEER: 2, ICONS: 3, RQLEN: 4, SHUTDOWN: 6 };
/** Socket states as sock_diag reports them (the TCP numbering). */
export const UNIX_STATE = { ESTABLISHED: 1, CLOSE: 7, LISTEN: 10 } as const;

export interface UnixSocketInfo {
  ino: number;
  /** SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5 */
  type: number;
  state: number;
  /** Bound address: sun_path's bytes (a leading NUL for the abstract namespace); undefined when unbound. */
  addr?: Buffer;
  /** The bound name in words: a path, or '@...' for the abstract namespace. */
  name?: string;
  /** Inode of the socket file a path name made (the name's file may be gone or replaced since). */
  vfsIno?: number;
  peer?: number;
  /** Listening sockets: the connecting sockets not accepted yet, in queue order. */
  pending?: number[];
  /** Queued: bytes (stream, seqpacket), the first message's length (dgram), connections (listening). */
  rqueue: number;
  /** Listening sockets: the backlog given to listen(). */
  backlog: number;
  /** RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2 */
  shutdown: number;
}

export interface UnixSocketTable {
  sockets: Map<number, UnixSocketInfo>;
  /**
   * Sockets made by connect() that no one has accept()ed yet (their peer: the connecting
   * socket, 0 once it closed): they have no inode of their own until accepted.
   */
  unaccepted: UnixSocketInfo[];
}

export function unixName(addr: Buffer): string {
  return addr[0] === 0 ? `@${addr.subarray(1).toString('latin1')}` : addr.toString('utf8').replace(/\0.*$/s, '');
}

/** A sockaddr_un for sun_path bytes. */
export function unixSockaddr(path: Buffer): Buffer {
  const sa = Buffer.alloc(2 + path.length);
  sa.writeUInt16LE(AF.UNIX, 0);
  path.copy(sa, 2);
  return sa;
}

/** Every unix socket of this network namespace, by inode. */
export function unixSockets(): UnixSocketTable {
  const nl = syscall('socket(AF.NETLINK)', NR.socket, AF.NETLINK, 2 /* SOCK_DGRAM */ | O_CLOEXEC, NETLINK_SOCK_DIAG);
  const table: UnixSocketTable = { sockets: new Map(), unaccepted: [] };
  try {
    const req = Buffer.alloc(40);
    req.writeUInt32LE(40, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt8(AF.UNIX, 16);
    req.writeUInt32LE(0xffffffff, 20); // every state
    req.writeUInt32LE(UDIAG_SHOW.NAME | UDIAG_SHOW.VFS | UDIAG_SHOW.PEER | UDIAG_SHOW.ICONS | UDIAG_SHOW.RQLEN, 28);
    const to = Buffer.alloc(12);
    to.writeUInt16LE(AF.NETLINK, 0);
    syscall('sendto(sock_diag)', NR.sendto, nl, req, req.length, 0, to, to.length);
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const n = syscall('recvfrom(sock_diag)', NR.recvfrom, nl, buf, buf.length, 0, 0, 0);
      for (let at = 0; at + 16 <= n;) {
        const len = buf.readUInt32LE(at);
        const type = buf.readUInt16LE(at + 4);
        if (type === NLMSG_DONE) return table;
        if (type === NLMSG_ERROR) throw new Error(`sock_diag: error ${-buf.readInt32LE(at + 16)}`);
        const msg = at + 16;
        const info: UnixSocketInfo = {
          ino: buf.readUInt32LE(msg + 4), type: buf.readUInt8(msg + 1), state: buf.readUInt8(msg + 2), rqueue: 0, backlog: 0, shutdown: 0,
        };
        for (let a = msg + 16; a + 4 <= at + len;) {
          const alen = buf.readUInt16LE(a);
          const atype = buf.readUInt16LE(a + 2);
          const data = buf.subarray(a + 4, a + alen);
          if (atype === UNIX_DIAG.NAME) {
            info.addr = Buffer.from(data);
            info.name = unixName(info.addr);
          }
          if (atype === UNIX_DIAG.VFS) info.vfsIno = data.readUInt32LE(0);
          if (atype === UNIX_DIAG.PEER) info.peer = data.readUInt32LE(0);
          if (atype === UNIX_DIAG.ICONS) info.pending = Array.from({ length: data.length / 4 }, (_, i) => data.readUInt32LE(i * 4));
          if (atype === UNIX_DIAG.RQLEN) {
            info.rqueue = data.readUInt32LE(0);
            if (info.state === UNIX_STATE.LISTEN) info.backlog = data.readUInt32LE(4);
          }
          if (atype === UNIX_DIAG.SHUTDOWN) info.shutdown = data.readUInt8(0);
          a += (alen + 3) & ~3;
        }
        if (info.ino === 0) table.unaccepted.push(info);
        else table.sockets.set(info.ino, info);
        at += (len + 3) & ~3;
      }
    }
  } finally {
    trySyscall(NR.close, nl);
  }
}
