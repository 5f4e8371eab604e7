// Sockets and epoll from ckpt's side: pulling a process's socket into ckpt (pidfd_getfd) to ask
// the kernel about it, and making listening sockets and epoll instances at restore.
import { addressOf, syscall, SysError, trySyscall } from './libc.js';

const NR = {
  socket: 41, connect: 42, bind: 49, listen: 50, getsockname: 51, getpeername: 52, getsockopt: 55, setsockopt: 54, close: 3,
  pidfd_open: 434, pidfd_getfd: 438, epoll_create1: 291,
  socketpair: 53, sendto: 44, recvfrom: 45, recvmsg: 47, accept4: 288, shutdown: 48,
};
/** Address families and socket types, for every kind of socket ckpt dumps. */
export const AF = { UNIX: 1, INET: 2, INET6: 10, NETLINK: 16 } as const;
export const SOCK = { STREAM: 1, DGRAM: 2, RAW: 3, SEQPACKET: 5 } as const;
export const SOL_SOCKET = 1;
export const SO = {
  REUSEADDR: 2, TYPE: 3, BROADCAST: 6, SNDBUF: 7, RCVBUF: 8, KEEPALIVE: 9, PRIORITY: 12, REUSEPORT: 15, PASSCRED: 16,
  BINDTODEVICE: 25, ACCEPTCONN: 30, SNDBUFFORCE: 32, RCVBUFFORCE: 33, MARK: 36, PROTOCOL: 38, DOMAIN: 39, PEEK_OFF: 42,
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

const MSG_PEEK = 2;
const MSG_DONTWAIT = 0x40;

/** A new connected pair of unix sockets of `type` in this process. */
export function socketpair(type: number): [number, number] {
  const fds = Buffer.alloc(8);
  syscall('socketpair', NR.socketpair, AF.UNIX, type | O_CLOEXEC, 0, fds);
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

/** send(2) of all of data (a datagram socket sends it as one message), to `to` if given. */
export function send(fd: number, data: Buffer, to?: Buffer): void {
  const r = syscall('send', NR.sendto, fd, data, data.length, 0, to ?? 0, to?.length ?? 0);
  if (r !== data.length) throw new Error(`send: ${r} of ${data.length} bytes`);
}

export function connect(fd: number, addr: Buffer, what?: string): void {
  syscall(what ? `connect(${what})` : 'connect', NR.connect, fd, addr, addr.length);
}

/** The next connection waiting on a listening socket, close-on-exec. */
export function accept(fd: number): number {
  return syscall('accept4', NR.accept4, fd, 0, 0, O_CLOEXEC);
}

/** how: SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2 */
export function shutdown(fd: number, how: number): void {
  syscall('shutdown', NR.shutdown, fd, how);
}

/** A pidfd of process pid in this process (flags: PIDFD_NONBLOCK), close-on-exec as always. */
export function pidfdOpen(pid: number, flags: number): number {
  return syscall(`pidfd_open(${pid})`, NR.pidfd_open, pid, flags);
}


export interface QueuedMessage {
  data: Buffer;
  /** The sender's sockaddr as recvmsg gives it (for a unix socket not bound: the family alone). */
  from: Buffer;
}

const SCM_RIGHTS = 1;
const MSG_CTRUNC = 8;
const EAGAIN = 11;

/**
 * What is queued at a socket, oldest first, left in place: the peek offset walks past each
 * message (each run of bytes of a stream) and is put back as it was, since the socket may be a
 * running process's. Throws when a message carries descriptors (they cannot be kept in an image).
 */
export function peekQueue(fd: number, maxBytes: number): QueuedMessage[] {
  const out: QueuedMessage[] = [];
  const before = getsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF);
  setsockoptInt(fd, SOL_SOCKET, SO.PEEK_OFF, 0);
  try {
    const data = Buffer.alloc(maxBytes);
    const name = Buffer.alloc(128);
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
      out.push({ data: Buffer.from(data.subarray(0, n)), from: Buffer.from(name.subarray(0, msg.readUInt32LE(8))) });
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
