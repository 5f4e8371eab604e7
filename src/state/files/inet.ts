// TCP listening sockets and UDP sockets (IPv4 and IPv6): address, options, flags. The socket is
// made anew in ckpt at restore (bound, listening) and handed over like any descriptor.
// Established TCP connections are not this module's: the dump refuses them, naming them.
import fs from 'node:fs';
import { closeFd, fcntl, F_SETFL } from '../../sys/files.js';
import {
  bind, getsockname, getsockoptInt, IPPROTO_IPV6, IPV6_V6ONLY, listen, pullFd, setsockoptInt, SO, socket, SOL_SOCKET,
} from '../../sys/sockets.js';
import type { FileKind, FileRecordBase } from './types.js';

const O_NONBLOCK = 0o4000;
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_DGRAM = 2;
const TCP_LISTEN = 0x0a;
/** The kernel's cap on listen backlogs here: the backlog itself is not readable from /proc. */
const BACKLOG = 4096;

export interface InetFileRecord extends FileRecordBase {
  kind: 'inet';
  proto: 'tcp' | 'udp';
  family: 4 | 6;
  /** The bound sockaddr, base64. */
  addr: string;
  reuseaddr: boolean;
  reuseport: boolean;
  v6only?: boolean;
  flags: number;
}

interface NetEntry { proto: 'tcp' | 'udp'; family: 4 | 6; local: string; remote: string; state: number; rxQueue: number }

/** The socket with this inode in the process's network namespace, from /proc/PID/net/*. */
function netEntry(pid: number, ino: bigint): NetEntry | undefined {
  for (const [file, proto, family] of [['tcp', 'tcp', 4], ['tcp6', 'tcp', 6], ['udp', 'udp', 4], ['udp6', 'udp', 6]] as const) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[9] !== ino.toString()) continue;
      return { proto, family, local: f[1], remote: f[2], state: parseInt(f[3], 16), rxQueue: parseInt(f[4].split(':')[1], 16) };
    }
  }
  return undefined;
}

/** "127.0.0.1:6379" from /proc/net's "0100007F:18EB" (IPv6: bracketed, in the kernel's word order). */
function endpoint(hex: string, family: 4 | 6): string {
  const [a, p] = hex.split(':');
  const port = parseInt(p, 16);
  if (family === 4) return `${[6, 4, 2, 0].map((i) => parseInt(a.slice(i, i + 2), 16)).join('.')}:${port}`;
  const words = a.match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(''));
  return `[${words.join('').match(/.{4}/g)!.join(':')}]:${port}`;
}

export class UnsupportedSocketError extends Error {}

export const inetSockets: FileKind<InetFileRecord> = {
  kind: 'inet',

  matches: ({ link, stat, pid }) => link.startsWith('socket:') && netEntry(pid, stat.ino) !== undefined,

  async collect({ pid, fd, stat, fdinfo }) {
    const e = netEntry(pid, stat.ino)!;
    if (e.proto === 'tcp' && e.state !== TCP_LISTEN) {
      throw new UnsupportedSocketError(`unsupported fd ${fd}: established TCP connection ${endpoint(e.local, e.family)} -> `
        + `${endpoint(e.remote, e.family)} in process ${pid} (TCP connections are not restored yet)`);
    }
    if (e.proto === 'tcp' && e.rxQueue > 0) {
      throw new UnsupportedSocketError(`unsupported fd ${fd}: listening socket ${endpoint(e.local, e.family)} in process ${pid} `
        + `has ${e.rxQueue} connection(s) waiting to be accepted`);
    }
    if (e.proto === 'udp' && !/^0+:0000$/.test(e.remote)) {
      throw new UnsupportedSocketError(`unsupported fd ${fd}: connected UDP socket ${endpoint(e.local, e.family)} -> `
        + `${endpoint(e.remote, e.family)} in process ${pid}`);
    }
    const copy = pullFd(pid, fd);
    try {
      return {
        proto: e.proto,
        family: e.family,
        addr: getsockname(copy).toString('base64'),
        reuseaddr: getsockoptInt(copy, SOL_SOCKET, SO.REUSEADDR) !== 0,
        reuseport: getsockoptInt(copy, SOL_SOCKET, SO.REUSEPORT) !== 0,
        ...(e.family === 6 ? { v6only: getsockoptInt(copy, IPPROTO_IPV6, IPV6_V6ONLY) !== 0 } : {}),
        flags: fdinfo.flags & O_NONBLOCK,
      };
    } finally {
      closeFd(copy);
    }
  },

  async open(_ctx, rec) {
    const fd = socket(rec.family === 4 ? AF_INET : AF_INET6, rec.proto === 'tcp' ? SOCK_STREAM : SOCK_DGRAM, 0);
    try {
      if (rec.reuseaddr) setsockoptInt(fd, SOL_SOCKET, SO.REUSEADDR, 1);
      if (rec.reuseport) setsockoptInt(fd, SOL_SOCKET, SO.REUSEPORT, 1);
      if (rec.v6only !== undefined) setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, rec.v6only ? 1 : 0);
      bind(fd, Buffer.from(rec.addr, 'base64'));
      if (rec.proto === 'tcp') listen(fd, BACKLOG);
      fcntl(fd, F_SETFL, rec.flags & O_NONBLOCK);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    return fd;
  },
};
