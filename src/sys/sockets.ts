// Sockets and epoll from ckpt's side: pulling a process's socket into ckpt (pidfd_getfd) to ask
// the kernel about it, and making listening sockets and epoll instances at restore.
import { syscall, trySyscall } from './libc.js';

const NR = {
  socket: 41, bind: 49, listen: 50, getsockname: 51, getsockopt: 55, setsockopt: 54, close: 3,
  pidfd_open: 434, pidfd_getfd: 438, epoll_create1: 291, epoll_ctl: 233,
};
export const SOL_SOCKET = 1;
export const SO = { REUSEADDR: 2, TYPE: 3, ACCEPTCONN: 30, PROTOCOL: 38, DOMAIN: 39, REUSEPORT: 15 } as const;
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

/** The raw sockaddr the socket is bound to. */
export function getsockname(fd: number): Buffer {
  const addr = Buffer.alloc(128);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(128, 0);
  syscall('getsockname', NR.getsockname, fd, addr, len);
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

const EPOLL_CTL_ADD = 1;

export function epollAdd(epfd: number, fd: number, events: number, data: bigint): void {
  const ev = Buffer.alloc(12); // struct epoll_event is packed on x86_64: u32 events, u64 data
  ev.writeUInt32LE(events >>> 0, 0);
  ev.writeBigUInt64LE(data, 4);
  syscall('epoll_ctl(ADD)', NR.epoll_ctl, epfd, EPOLL_CTL_ADD, fd, ev);
}
