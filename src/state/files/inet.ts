// TCP listening sockets and UDP sockets (IPv4 and IPv6): address, peer (connected UDP), the
// options set on them, flags, and the datagrams waiting to be read. The socket is made anew in
// ckpt at restore (bound, listening or connected) and handed over like any descriptor.
// Established TCP connections are not this module's: the dump refuses them, naming them.
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeFd, fcntl, F_SETFL } from '../../sys/files.js';
import {
  AF, bind, connect, getpeername, getsockname, getsockoptBytes, getsockoptInt, IPPROTO_IP, IPPROTO_IPV6, IPPROTO_TCP, IPPROTO_UDP,
  IPV6_V6ONLY, listen, peekQueue, pullFd, send, setsockoptBytes, setsockoptInt, SO, SOCK, socket, SOL_SOCKET,
} from '../../sys/sockets.js';
import { udpPacket } from '../../sys/udp-packet.js';
import type { FileKind, FileRecordBase } from './types.js';

const O_NONBLOCK = 0o4000;
const IPPROTO_RAW = 255;
const TCP_LISTEN = 0x0a;
/** The kernel's cap on listen backlogs here: the backlog itself is not readable from /proc. */
const BACKLOG = 4096;
/** Larger than any UDP payload, so a peek never truncates a datagram. */
const MAX_DATAGRAM = 65536;
/** How long a restore waits for re-sent datagrams to cross the loopback into the new socket. */
const DELIVERY_WAIT_MS = 1000;

interface SocketOption {
  level: number;
  name: number;
  /** Which sockets it means something for. */
  proto?: 'tcp' | 'udp';
  family?: 4 | 6;
  /** Set before bind(): it decides which addresses bind() accepts. */
  beforeBind?: boolean;
}

/**
 * The integer options a server commonly sets, by their C names. The dump records those that
 * differ from a fresh socket of the same kind; the restore sets them so that getsockopt reads
 * the same values back.
 */
const OPTIONS: Record<string, SocketOption> = {
  SO_RCVBUF: { level: SOL_SOCKET, name: SO.RCVBUF },
  SO_SNDBUF: { level: SOL_SOCKET, name: SO.SNDBUF },
  SO_KEEPALIVE: { level: SOL_SOCKET, name: SO.KEEPALIVE, proto: 'tcp' },
  SO_BROADCAST: { level: SOL_SOCKET, name: SO.BROADCAST, proto: 'udp' },
  SO_MARK: { level: SOL_SOCKET, name: SO.MARK },
  SO_PEEK_OFF: { level: SOL_SOCKET, name: SO.PEEK_OFF, proto: 'udp' },
  IP_TOS: { level: IPPROTO_IP, name: 1, family: 4 },
  IP_TTL: { level: IPPROTO_IP, name: 2, family: 4 },
  IP_PKTINFO: { level: IPPROTO_IP, name: 8, family: 4, proto: 'udp' },
  IP_RECVERR: { level: IPPROTO_IP, name: 11, family: 4 },
  IP_FREEBIND: { level: IPPROTO_IP, name: 15, family: 4, beforeBind: true },
  IP_TRANSPARENT: { level: IPPROTO_IP, name: 19, family: 4, beforeBind: true },
  IP_MULTICAST_TTL: { level: IPPROTO_IP, name: 33, family: 4, proto: 'udp' },
  IP_MULTICAST_LOOP: { level: IPPROTO_IP, name: 34, family: 4, proto: 'udp' },
  IPV6_UNICAST_HOPS: { level: IPPROTO_IPV6, name: 16, family: 6 },
  IPV6_MULTICAST_HOPS: { level: IPPROTO_IPV6, name: 18, family: 6, proto: 'udp' },
  IPV6_MULTICAST_LOOP: { level: IPPROTO_IPV6, name: 19, family: 6, proto: 'udp' },
  IPV6_RECVERR: { level: IPPROTO_IPV6, name: 25, family: 6 },
  IPV6_RECVPKTINFO: { level: IPPROTO_IPV6, name: 49, family: 6, proto: 'udp' },
  IPV6_TCLASS: { level: IPPROTO_IPV6, name: 67, family: 6 },
  IPV6_TRANSPARENT: { level: IPPROTO_IPV6, name: 75, family: 6, beforeBind: true },
  IPV6_FREEBIND: { level: IPPROTO_IPV6, name: 78, family: 6, beforeBind: true },
  // After IP_TOS, which sets the priority too.
  SO_PRIORITY: { level: SOL_SOCKET, name: SO.PRIORITY },
  TCP_NODELAY: { level: IPPROTO_TCP, name: 1, proto: 'tcp' },
  TCP_KEEPIDLE: { level: IPPROTO_TCP, name: 4, proto: 'tcp' },
  TCP_KEEPINTVL: { level: IPPROTO_TCP, name: 5, proto: 'tcp' },
  TCP_KEEPCNT: { level: IPPROTO_TCP, name: 6, proto: 'tcp' },
  // Read back in seconds rounded up to a whole retransmission period: setting that value gives the same period.
  TCP_DEFER_ACCEPT: { level: IPPROTO_TCP, name: 9, proto: 'tcp' },
  TCP_FASTOPEN: { level: IPPROTO_TCP, name: 23, proto: 'tcp' },
};

/** A datagram waiting to be read at dump, with the sockaddr it came from (both base64). */
export interface QueuedDatagram {
  from: string;
  data: string;
}

export interface InetFileRecord extends FileRecordBase {
  kind: 'inet';
  proto: 'tcp' | 'udp';
  family: 4 | 6;
  /** The bound sockaddr, base64; port 0: never bound. */
  addr: string;
  /** Connected UDP: the peer's sockaddr, base64. */
  peer?: string;
  reuseaddr: boolean;
  reuseport: boolean;
  v6only?: boolean;
  /** Options whose value differs from a fresh socket's, as getsockopt reads them (SO_RCVBUF: the doubled value). */
  options?: Record<string, number>;
  /** SO_BINDTODEVICE. */
  device?: string;
  /** UDP: the datagrams waiting to be read, oldest first. */
  queued?: QueuedDatagram[];
  flags: number;
}

interface NetEntry { proto: 'tcp' | 'udp'; family: 4 | 6; local: string; remote: string; state: number; rxQueue: number; ino: string }

/** The sockets of /proc/PID/net/{tcp,tcp6,udp,udp6}: the network namespace of pid. */
function netEntries(pid: number | 'self', files: ReadonlyArray<readonly ['tcp' | 'udp', 4 | 6]>): NetEntry[] {
  const out: NetEntry[] = [];
  for (const [proto, family] of files) {
    let text: string;
    try {
      text = fs.readFileSync(`/proc/${pid}/net/${proto}${family === 6 ? '6' : ''}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      out.push({ proto, family, local: f[1], remote: f[2], state: parseInt(f[3], 16), rxQueue: parseInt(f[4].split(':')[1], 16), ino: f[9] });
    }
  }
  return out;
}

const ALL_TABLES = [['tcp', 4], ['tcp', 6], ['udp', 4], ['udp', 6]] as const;

/** The socket with this inode in the process's network namespace (a UDP socket never bound is in none). */
function netEntry(pid: number, ino: bigint): NetEntry | undefined {
  return netEntries(pid, ALL_TABLES).find((e) => e.ino === ino.toString());
}

/** "127.0.0.1:6379" or "[::1]:53" from a raw sockaddr_in / sockaddr_in6. */
export function formatSockaddr(sa: Buffer): string {
  const port = sa.readUInt16BE(2);
  if (sa.readUInt16LE(0) === AF.INET) return `${[...sa.subarray(4, 8)].join('.')}:${port}`;
  const groups = Array.from({ length: 8 }, (_, i) => sa.readUInt16BE(8 + 2 * i).toString(16));
  let text = groups.join(':');
  // The longest run of zero groups becomes '::'.
  const runs = text.match(/(^|:)0(:0)+(:|$)/g);
  if (runs) {
    const longest = runs.reduce((a, b) => (b.length > a.length ? b : a));
    text = text.replace(longest, '::');
  }
  return `[${text}]:${port}`;
}

const portOf = (sa: Buffer) => sa.readUInt16BE(2);
const isWildcard = (sa: Buffer) => (sa.readUInt16LE(0) === AF.INET ? sa.subarray(4, 8) : sa.subarray(8, 24)).every((b) => b === 0);
/** The IPv4 address inside an IPv6 sockaddr holding a v4-mapped one (::ffff:a.b.c.d), else undefined. */
function mappedV4(sa: Buffer): Buffer | undefined {
  if (sa.readUInt16LE(0) !== AF.INET6) return undefined;
  const a = sa.subarray(8, 24);
  return a.subarray(0, 10).every((b) => b === 0) && a[10] === 0xff && a[11] === 0xff ? Buffer.from(a.subarray(12)) : undefined;
}

function sockaddrIn(addr: Buffer, port: number): Buffer {
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF.INET, 0);
  sa.writeUInt16BE(port, 2);
  addr.copy(sa, 4);
  return sa;
}

function applies(o: SocketOption, proto: 'tcp' | 'udp', family: 4 | 6): boolean {
  return (o.proto === undefined || o.proto === proto) && (o.family === undefined || o.family === family);
}

/** The value of each option that applies to such a socket; those the kernel does not answer are left out. */
function readOptions(fd: number, proto: 'tcp' | 'udp', family: 4 | 6): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, o] of Object.entries(OPTIONS)) {
    if (!applies(o, proto, family)) continue;
    try {
      out[name] = getsockoptInt(fd, o.level, o.name);
    } catch {
      // An option this kernel does not know: nothing to save.
    }
  }
  return out;
}

/** The options of a socket of this kind as the kernel makes it, for comparison. */
function freshOptions(proto: 'tcp' | 'udp', family: 4 | 6): Record<string, number> {
  const fd = socket(family === 4 ? AF.INET : AF.INET6, proto === 'tcp' ? SOCK.STREAM : SOCK.DGRAM, 0);
  try {
    return readOptions(fd, proto, family);
  } finally {
    closeFd(fd);
  }
}

function setOption(fd: number, name: string, value: number): void {
  const o = OPTIONS[name];
  if (!o) throw new Error(`unknown socket option ${name} in image`);
  // The kernel stores twice the buffer size asked for: ask for half of what was read. The
  // forcing variants (root) pass over net.core.[rw]mem_max, which the dumped value may exceed.
  if (name === 'SO_RCVBUF' || name === 'SO_SNDBUF') {
    const force = name === 'SO_RCVBUF' ? SO.RCVBUFFORCE : SO.SNDBUFFORCE;
    try {
      setsockoptInt(fd, SOL_SOCKET, force, Math.floor(value / 2));
    } catch {
      setsockoptInt(fd, SOL_SOCKET, o.name, Math.floor(value / 2));
    }
    return;
  }
  setsockoptInt(fd, o.level, o.name, value);
}

/** Whether the address of a sockaddr is one of this network namespace's own: a plain socket can bind to it. */
function isLocal(sa: Buffer): boolean {
  const probe = socket(sa.readUInt16LE(0), SOCK.DGRAM, 0);
  try {
    bind(probe, sa);
    return true;
  } catch {
    return false;
  } finally {
    closeFd(probe);
  }
}

/**
 * Sends the datagrams that waited at the dumped socket to the new one (bound, not yet connected)
 * from their original senders: a raw socket writes each packet with the sender's address and
 * port, and the loopback delivers it. What cannot arrive so (no raw socket, another socket on
 * the port that could take it, a socket bound to an address not of this machine) is dropped
 * with a warning, never delivered from another source.
 */
async function redeliver(fd: number, rec: InetFileRecord, warn: (m: string) => void): Promise<void> {
  const queued = rec.queued ?? [];
  if (queued.length === 0) return;
  const local = getsockname(fd);
  const lost = (why: string) => warn(`${queued.length} datagram(s) queued at udp socket ${formatSockaddr(local)} dropped: ${why}`);
  const ino = fs.fstatSync(fd).ino.toString();
  const packets = queued.map((q) => {
    const from = Buffer.from(q.from, 'base64');
    const v4From = from.readUInt16LE(0) === AF.INET ? from.subarray(4, 8) : mappedV4(from);
    // A v4 sender of a dual-stack IPv6 socket comes in over IPv4, to the v4 side of its address.
    const over: 4 | 6 = v4From ? 4 : 6;
    let dst: Buffer;
    if (rec.family === 4) dst = isWildcard(local) ? Buffer.from([127, 0, 0, 1]) : Buffer.from(local.subarray(4, 8));
    else if (over === 4) dst = mappedV4(local) ?? Buffer.from([127, 0, 0, 1]);
    else dst = isWildcard(local) ? Buffer.from([...Array(15).fill(0), 1]) : Buffer.from(local.subarray(8, 24));
    const to = over === 4 ? sockaddrIn(dst, 0) : Buffer.concat([local.subarray(0, 2), Buffer.alloc(6), dst, local.subarray(24, 28)]);
    const packet = udpPacket(Buffer.from(v4From ?? from.subarray(8, 24)), portOf(from), dst, portOf(local), Buffer.from(q.data, 'base64'));
    return { over, to, packet };
  });
  // A packet to an address of no local interface (IP_FREEBIND, IP_TRANSPARENT) would leave the machine.
  const destinations = new Map(packets.map((p) => [p.to.toString('hex'), p.to]));
  const foreign = [...destinations.values()].find((to) => !isLocal(to));
  if (foreign) return lost(`${formatSockaddr(foreign).replace(/:0$/, '')} is no address of this machine`);
  // The port is ours alone, or the kernel could hand a packet to another socket on it. IPv4
  // packets also reach dual-stack IPv6 sockets, but prefer an IPv4 one.
  const tables: Array<readonly ['udp', 4 | 6]> = [];
  if (packets.some((p) => p.over === 4)) tables.push(['udp', 4]);
  if (packets.some((p) => p.over === 6) || (rec.family === 6 && tables.length > 0)) tables.push(['udp', 6]);
  const rivals = netEntries('self', tables).filter((e) => e.ino !== ino && parseInt(e.local.split(':')[1]!, 16) === portOf(local));
  if (rivals.length > 0) return lost(`another socket is bound to port ${portOf(local)} and could receive them`);
  const raws = new Map<4 | 6, number>();
  try {
    for (const over of new Set(packets.map((p) => p.over))) {
      try {
        raws.set(over, socket(over === 4 ? AF.INET : AF.INET6, SOCK.RAW, IPPROTO_RAW));
      } catch (e) {
        return lost(`no raw socket to send them from their senders (${(e as Error).message})`);
      }
    }
    for (const p of packets) send(raws.get(p.over)!, p.packet, p.to);
  } finally {
    for (const raw of raws.values()) closeFd(raw);
  }
  // The loopback hands packets on asynchronously: wait until all are in the socket's queue.
  let arrived = 0;
  for (let waited = 0; waited <= DELIVERY_WAIT_MS; waited += 10) {
    arrived = peekQueue(fd, MAX_DATAGRAM).length;
    if (arrived >= queued.length) return;
    await sleep(10);
  }
  warn(`${queued.length - arrived} of ${queued.length} datagram(s) queued at udp socket ${formatSockaddr(local)} did not arrive again`);
}

/**
 * What to bind to for the address read at dump. Binding an IPv6 socket to a specific IPv6
 * address makes it IPv6-only: one that is not was bound to the wildcard, and its address came
 * with connect(), as it will again.
 */
function boundAddress(rec: InetFileRecord, addr: Buffer): Buffer {
  if (rec.family !== 6 || rec.v6only || isWildcard(addr) || mappedV4(addr)) return addr;
  const wildcard = Buffer.from(addr);
  wildcard.fill(0, 8, 24);
  return wildcard;
}

export class UnsupportedSocketError extends Error {}

export const inetSockets: FileKind<InetFileRecord> = {
  kind: 'inet',

  matches: ({ link, stat, pid, fd }) => {
    if (!link.startsWith('socket:')) return false;
    if (netEntry(pid, stat.ino) !== undefined) return true;
    // A socket in no table: an inet one never bound (or a closed TCP one), or another family.
    const copy = pullFd(pid, fd);
    try {
      const domain = getsockoptInt(copy, SOL_SOCKET, SO.DOMAIN);
      const protocol = getsockoptInt(copy, SOL_SOCKET, SO.PROTOCOL);
      return (domain === AF.INET || domain === AF.INET6) && (protocol === IPPROTO_UDP || protocol === IPPROTO_TCP);
    } finally {
      closeFd(copy);
    }
  },

  async collect({ pid, fd, stat, fdinfo }) {
    const e = netEntry(pid, stat.ino);
    const copy = pullFd(pid, fd);
    try {
      const family = getsockoptInt(copy, SOL_SOCKET, SO.DOMAIN) === AF.INET ? 4 : 6;
      const proto = getsockoptInt(copy, SOL_SOCKET, SO.PROTOCOL) === IPPROTO_TCP ? 'tcp' : 'udp';
      const addr = getsockname(copy);
      const peer = getpeername(copy);
      const what = `${proto}${family === 6 ? '6' : ''} socket ${formatSockaddr(addr)}`;
      if (proto === 'tcp' && e?.state !== TCP_LISTEN) {
        throw new UnsupportedSocketError(peer
          ? `unsupported fd ${fd}: established TCP connection ${formatSockaddr(addr)} -> ${formatSockaddr(peer)} in process ${pid} `
            + '(TCP connections are not restored yet)'
          : `unsupported fd ${fd}: ${what} neither listening nor connected in process ${pid}`);
      }
      if (proto === 'tcp' && e!.rxQueue > 0) {
        throw new UnsupportedSocketError(`unsupported fd ${fd}: listening socket ${formatSockaddr(addr)} in process ${pid} `
          + `has ${e!.rxQueue} connection(s) waiting to be accepted`);
      }
      const fresh = freshOptions(proto, family);
      const options = Object.fromEntries(Object.entries(readOptions(copy, proto, family)).filter(([k, v]) => fresh[k] !== v));
      const device = getsockoptBytes(copy, SOL_SOCKET, SO.BINDTODEVICE, 16).toString('latin1').replace(/\0.*$/s, '');
      const queued = proto === 'udp' && (e?.rxQueue ?? 0) > 0 ? peekQueue(copy, MAX_DATAGRAM) : [];
      return {
        proto,
        family,
        addr: addr.toString('base64'),
        ...(peer ? { peer: peer.toString('base64') } : {}),
        reuseaddr: getsockoptInt(copy, SOL_SOCKET, SO.REUSEADDR) !== 0,
        reuseport: getsockoptInt(copy, SOL_SOCKET, SO.REUSEPORT) !== 0,
        ...(family === 6 ? { v6only: getsockoptInt(copy, IPPROTO_IPV6, IPV6_V6ONLY) !== 0 } : {}),
        ...(Object.keys(options).length ? { options } : {}),
        ...(device ? { device } : {}),
        ...(queued.length ? { queued: queued.map((q) => ({ from: q.from.toString('base64'), data: q.data.toString('base64') })) } : {}),
        flags: fdinfo.flags & O_NONBLOCK,
      };
    } finally {
      closeFd(copy);
    }
  },

  async open(ctx, rec) {
    const fd = socket(rec.family === 4 ? AF.INET : AF.INET6, rec.proto === 'tcp' ? SOCK.STREAM : SOCK.DGRAM, 0);
    try {
      const options = Object.entries(rec.options ?? {});
      if (rec.reuseaddr) setsockoptInt(fd, SOL_SOCKET, SO.REUSEADDR, 1);
      if (rec.reuseport) setsockoptInt(fd, SOL_SOCKET, SO.REUSEPORT, 1);
      if (rec.v6only !== undefined) setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, rec.v6only ? 1 : 0);
      for (const [name, value] of options) if (OPTIONS[name]?.beforeBind) setOption(fd, name, value);
      const addr = Buffer.from(rec.addr, 'base64');
      // Port 0: the socket was never bound; binding it now would give it a port it did not have.
      if (portOf(addr) !== 0) bind(fd, boundAddress(rec, addr));
      // The receive buffer is the dumped one before the queue comes back, so that it holds it.
      for (const [name, value] of options) if (!OPTIONS[name]?.beforeBind) setOption(fd, name, value);
      // Before the device binding (they come in on the loopback) and connect(), which would turn
      // away datagrams that came from others than the peer.
      await redeliver(fd, rec, ctx.warn);
      if (rec.device) setsockoptBytes(fd, SOL_SOCKET, SO.BINDTODEVICE, Buffer.from(`${rec.device}\0`, 'latin1'));
      if (rec.peer) connect(fd, Buffer.from(rec.peer, 'base64'));
      if (rec.proto === 'tcp') listen(fd, BACKLOG);
      for (const [name, value] of options) {
        const got = getsockoptInt(fd, OPTIONS[name]!.level, OPTIONS[name]!.name);
        if (got !== value) ctx.warn(`${rec.proto} socket ${formatSockaddr(addr)}: ${name} restored as ${got}, not ${value}`);
      }
      const local = getsockname(fd);
      if (!local.equals(addr)) ctx.warn(`${rec.proto} socket ${formatSockaddr(addr)} restored as ${formatSockaddr(local)}`);
      fcntl(fd, F_SETFL, rec.flags & O_NONBLOCK);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    return fd;
  },
};
