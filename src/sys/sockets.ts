// Sockets and epoll from ckpt's side: pulling a process's socket into ckpt (pidfd_getfd) to ask
// the kernel about it, and making listening sockets and epoll instances at restore.
import { syscall, SysError, trySyscall } from './libc.js';

const NR = {
  socket: 41, connect: 42, bind: 49, listen: 50, getsockname: 51, getpeername: 52, getsockopt: 55, setsockopt: 54, close: 3,
  pidfd_open: 434, pidfd_getfd: 438, epoll_create1: 291, epoll_ctl: 233,
};
export const SOL_SOCKET = 1;
export const SO = {
  REUSEADDR: 2, TYPE: 3, BROADCAST: 6, SNDBUF: 7, RCVBUF: 8, KEEPALIVE: 9, PRIORITY: 12, REUSEPORT: 15, BINDTODEVICE: 25,
  ACCEPTCONN: 30, SNDBUFFORCE: 32, RCVBUFFORCE: 33, MARK: 36, PROTOCOL: 38, DOMAIN: 39, PEEK_OFF: 42,
} as const;
export const IPPROTO_IP = 0;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
const O_CLOEXEC = 0o2000000;

/** A copy, in ckpt, of descriptor fd of process pid (the same open file). */
export function pullFd(pid: number, fd: number): number {
  const pidfd = syscall(`pidfd_open(${pid})`, NR.pidfd_open, pid, 0);
  try {
    return syscall(`pidfd_getfd(${pid}, ${fd})`, NR.pidfd_getfd, pidfd, fd, 0);
  } finally {
    trySyscall(NR.close, pidfd);
  }
}

export function getsockoptInt(fd: number, level: number, name: number): number {
  const v = Buffer.alloc(4);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(4, 0);
  syscall(`getsockopt(${level}, ${name})`, NR.getsockopt, fd, level, name, v, len);
  return v.readInt32LE(0);
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value, 0);
  syscall(`setsockopt(${level}, ${name})`, NR.setsockopt, fd, level, name, v, 4);
}

/** A socket option's bytes (at most max), as getsockopt returns them. */
export function getsockoptBytes(fd: number, level: number, name: number, max: number): Buffer {
  const v = Buffer.alloc(max);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(max, 0);
  syscall(`getsockopt(${level}, ${name})`, NR.getsockopt, fd, level, name, v, len);
  return Buffer.from(v.subarray(0, len.readUInt32LE(0)));
}

export function setsockoptBytes(fd: number, level: number, name: number, value: Buffer): void {
  syscall(`setsockopt(${level}, ${name})`, NR.setsockopt, fd, level, name, value, value.length);
}

function sockaddrOf(call: string, nr: number, fd: number): Buffer {
  const addr = Buffer.alloc(128);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(128, 0);
  syscall(call, nr, fd, addr, len);
  return Buffer.from(addr.subarray(0, len.readUInt32LE(0)));
}

/** The raw sockaddr the socket is bound to. */
export function getsockname(fd: number): Buffer {
  return sockaddrOf('getsockname', NR.getsockname, fd);
}

/** The raw sockaddr of a connected socket's peer; undefined when it has none (ENOTCONN). */
export function getpeername(fd: number): Buffer | undefined {
  const addr = Buffer.alloc(128);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(128, 0);
  const r = trySyscall(NR.getpeername, fd, addr, len);
  if (r === -107) return undefined; // ENOTCONN
  if (r < 0) throw new SysError('getpeername', -r);
  return Buffer.from(addr.subarray(0, len.readUInt32LE(0)));
}

export function connect(fd: number, addr: Buffer): void {
  syscall('connect', NR.connect, fd, addr, addr.length);
}

export function socket(domain: number, type: number, protocol: number): number {
  return syscall('socket', NR.socket, domain, type | O_CLOEXEC, protocol);
}

export function bind(fd: number, addr: Buffer): void {
  syscall('bind', NR.bind, fd, addr, addr.length);
}

export function listen(fd: number, backlog: number): void {
  syscall('listen', NR.listen, fd, backlog);
}

export function epollCreate(): number {
  return syscall('epoll_create1', NR.epoll_create1, O_CLOEXEC);
}

const EPOLL_CTL_ADD = 1;

export function epollAdd(epfd: number, fd: number, events: number, data: bigint): void {
  const ev = Buffer.alloc(12); // struct epoll_event is packed on x86_64: u32 events, u64 data
  ev.writeUInt32LE(events >>> 0, 0);
  ev.writeBigUInt64LE(data, 4);
  syscall('epoll_ctl(ADD)', NR.epoll_ctl, epfd, EPOLL_CTL_ADD, fd, ev);
}

const NR_NET = { socketpair: 53, sendto: 44, recvfrom: 45 };
const AF_NETLINK = 16;
const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const AF_UNIX = 1;
const UDIAG_SHOW = { NAME: 1, PEER: 4, RQLEN: 0x10 };
const UNIX_DIAG = { NAME: 0, PEER: 2, RQLEN: 4 };
export const MSG_PEEK = 2;
export const MSG_DONTWAIT = 0x40;

export interface UnixSocketInfo {
  ino: number;
  /** SOCK_STREAM 1, SOCK_DGRAM 2, SOCK_SEQPACKET 5 */
  type: number;
  state: number;
  /** Bound name: a path, or '@...' for the abstract namespace; undefined when unbound. */
  name?: string;
  peer?: number;
  /** Queued: bytes (stream) or messages (datagrams) waiting to be read. */
  rqueue: number;
}

/** Every unix socket of this network namespace, by inode (sock_diag over netlink). */
export function unixSockets(): Map<number, UnixSocketInfo> {
  const nl = syscall('socket(AF_NETLINK)', NR.socket, AF_NETLINK, 2 /* SOCK_DGRAM */ | O_CLOEXEC, NETLINK_SOCK_DIAG);
  const out = new Map<number, UnixSocketInfo>();
  try {
    const req = Buffer.alloc(40);
    req.writeUInt32LE(40, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt8(AF_UNIX, 16);
    req.writeUInt32LE(0xffffffff, 20); // every state
    req.writeUInt32LE(UDIAG_SHOW.NAME | UDIAG_SHOW.PEER | UDIAG_SHOW.RQLEN, 28);
    const to = Buffer.alloc(12);
    to.writeUInt16LE(AF_NETLINK, 0);
    syscall('sendto(sock_diag)', NR_NET.sendto, nl, req, req.length, 0, to, to.length);
    const buf = Buffer.alloc(1 << 16);
    for (;;) {
      const n = syscall('recvfrom(sock_diag)', NR_NET.recvfrom, nl, buf, buf.length, 0, 0, 0);
      for (let at = 0; at + 16 <= n;) {
        const len = buf.readUInt32LE(at);
        const type = buf.readUInt16LE(at + 4);
        if (type === NLMSG_DONE) return out;
        if (type === NLMSG_ERROR) throw new Error(`sock_diag: error ${-buf.readInt32LE(at + 16)}`);
        const msg = at + 16;
        const info: UnixSocketInfo = { ino: buf.readUInt32LE(msg + 4), type: buf.readUInt8(msg + 1), state: buf.readUInt8(msg + 2), rqueue: 0 };
        for (let a = msg + 16; a + 4 <= at + len;) {
          const alen = buf.readUInt16LE(a);
          const atype = buf.readUInt16LE(a + 2);
          const data = buf.subarray(a + 4, a + alen);
          if (atype === UNIX_DIAG.NAME) info.name = data[0] === 0 ? `@${data.subarray(1).toString('latin1')}` : data.toString('utf8').replace(/\0.*$/, '');
          if (atype === UNIX_DIAG.PEER) info.peer = data.readUInt32LE(0);
          if (atype === UNIX_DIAG.RQLEN) info.rqueue = data.readUInt32LE(0);
          a += (alen + 3) & ~3;
        }
        out.set(info.ino, info);
        at += (len + 3) & ~3;
      }
    }
  } finally {
    trySyscall(NR.close, nl);
  }
}

/** A new connected pair of unix sockets of `type` in this process. */
export function socketpair(type: number): [number, number] {
  const fds = Buffer.alloc(8);
  syscall('socketpair', NR_NET.socketpair, AF_UNIX, type | O_CLOEXEC, 0, fds);
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

/** recv(2) with flags; the bytes received (at most len), empty when nothing waits. */
export function recv(fd: number, len: number, flags: number): Buffer {
  const buf = Buffer.alloc(len);
  const r = trySyscall(NR_NET.recvfrom, fd, buf, len, flags, 0, 0);
  if (r === -11) return Buffer.alloc(0); // EAGAIN
  if (r < 0) throw new Error(`recv: errno ${-r}`);
  return buf.subarray(0, r);
}

/** send(2) of all of data (a datagram socket sends it as one message). */
export function send(fd: number, data: Buffer): void {
  const r = syscall('send', NR_NET.sendto, fd, data, data.length, 0, 0, 0);
  if (r !== data.length) throw new Error(`send: ${r} of ${data.length} bytes`);
}

/** A pidfd of process pid in this process (flags: PIDFD_NONBLOCK), close-on-exec as always. */
export function pidfdOpen(pid: number, flags: number): number {
  return syscall(`pidfd_open(${pid})`, NR.pidfd_open, pid, flags);
}

/** recvfrom(2): the bytes received (at most len) and the sender's raw sockaddr; undefined when nothing waits. */
export function recvFrom(fd: number, len: number, flags: number): { data: Buffer; from: Buffer } | undefined {
  const buf = Buffer.alloc(len);
  const from = Buffer.alloc(128);
  const fromLen = Buffer.alloc(4);
  fromLen.writeUInt32LE(128, 0);
  const r = trySyscall(NR_NET.recvfrom, fd, buf, len, flags, from, fromLen);
  if (r === -11) return undefined; // EAGAIN
  if (r < 0) throw new SysError('recvfrom', -r);
  return { data: Buffer.from(buf.subarray(0, r)), from: Buffer.from(from.subarray(0, fromLen.readUInt32LE(0))) };
}

/** sendto(2) of data, as one message, to the raw sockaddr `to`. */
export function sendTo(fd: number, data: Buffer, to: Buffer): void {
  const r = syscall('sendto', NR_NET.sendto, fd, data, data.length, 0, to, to.length);
  if (r !== data.length) throw new Error(`sendto: ${r} of ${data.length} bytes`);
}
