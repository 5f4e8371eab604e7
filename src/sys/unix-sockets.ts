// Unix sockets seen from outside: every socket of the network namespace with its name, peer,
// pending connections and queue (sock_diag over netlink), and the messages queued on a socket
// read without taking them (MSG_PEEK walked along with SO_PEEK_OFF).
import { addressOf, syscall, trySyscall } from './libc.js';
import { getsockoptInt, MSG_DONTWAIT, MSG_PEEK, setsockoptInt, SO, SOL_SOCKET } from './sockets.js';

const NR = { socket: 41, sendto: 44, recvfrom: 45, recvmsg: 47, close: 3 };
const O_CLOEXEC = 0o2000000;
const AF_NETLINK = 16;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const AF_UNIX = 1;
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
  sa.writeUInt16LE(AF_UNIX, 0);
  path.copy(sa, 2);
  return sa;
}

/** Every unix socket of this network namespace, by inode. */
export function unixSockets(): UnixSocketTable {
  const nl = syscall('socket(AF_NETLINK)', NR.socket, AF_NETLINK, 2 /* SOCK_DGRAM */ | O_CLOEXEC, NETLINK_SOCK_DIAG);
  const table: UnixSocketTable = { sockets: new Map(), unaccepted: [] };
  try {
    const req = Buffer.alloc(40);
    req.writeUInt32LE(40, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt8(AF_UNIX, 16);
    req.writeUInt32LE(0xffffffff, 20); // every state
    req.writeUInt32LE(UDIAG_SHOW.NAME | UDIAG_SHOW.VFS | UDIAG_SHOW.PEER | UDIAG_SHOW.ICONS | UDIAG_SHOW.RQLEN, 28);
    const to = Buffer.alloc(12);
    to.writeUInt16LE(AF_NETLINK, 0);
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

export interface QueuedMessage {
  data: Buffer;
  /** The sender's address (sun_path bytes); empty when it was not bound. */
  from: Buffer;
}

const SCM_RIGHTS = 1;
const MSG_CTRUNC = 8;
const EAGAIN = 11;

/**
 * The messages queued on a datagram or seqpacket socket, oldest first, left in place: the peek
 * offset walks past each one and is put back as it was.
 * Throws when a message carries descriptors (they cannot be saved in an image).
 */
export function peekMessages(fd: number, maxBytes: number): QueuedMessage[] {
  const out: QueuedMessage[] = [];
  const before = getsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF);
  setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, 0);
  try {
    const data = Buffer.alloc(maxBytes);
    const name = Buffer.alloc(110);
    const control = Buffer.alloc(512);
    const iov = Buffer.alloc(16);
    iov.writeBigUInt64LE(addressOf(data), 0);
    iov.writeBigUInt64LE(BigInt(data.length), 8);
    for (;;) {
      const msg = Buffer.alloc(56);
      msg.writeBigUInt64LE(addressOf(name), 0);
      msg.writeUInt32LE(name.length, 8);
      msg.writeBigUInt64LE(addressOf(iov), 16);
      msg.writeBigUInt64LE(1n, 24);
      msg.writeBigUInt64LE(addressOf(control), 32);
      msg.writeBigUInt64LE(BigInt(control.length), 40);
      const n = trySyscall(NR.recvmsg, fd, msg, MSG_PEEK | MSG_DONTWAIT);
      // A stream whose peer has gone reads 0 at its end; an empty datagram cannot be walked past.
      if (n === -EAGAIN || n === 0) return out;
      if (n < 0) throw new Error(`recvmsg(MSG_PEEK): errno ${-n}`);
      const controlLen = Number(msg.readBigUInt64LE(40));
      if ((msg.readInt32LE(48) & MSG_CTRUNC) !== 0 || carriesRights(control.subarray(0, controlLen))) {
        throw new Error('a queued message carries file descriptors');
      }
      const nameLen = msg.readUInt32LE(8);
      out.push({ data: Buffer.from(data.subarray(0, n)), from: Buffer.from(name.subarray(2, Math.max(2, nameLen))) });
    }
  } finally {
    setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, before);
  }
}

/** Whether a control buffer holds SCM_RIGHTS (the peek installed copies: they are closed here). */
function carriesRights(control: Buffer): boolean {
  let rights = false;
  for (let at = 0; at + 16 <= control.length;) {
    const len = Number(control.readBigUInt64LE(at));
    if (control.readInt32LE(at + 8) === SOL_SOCKET && control.readInt32LE(at + 12) === SCM_RIGHTS) {
      rights = true;
      for (let f = at + 16; f + 4 <= at + len; f += 4) trySyscall(NR.close, control.readInt32LE(f));
    }
    if (len < 16) break;
    at += (len + 7) & ~7;
  }
  return rights;
}
