// Netlink sockets (route, generic, uevent, usersock, ...): protocol, type, port id, multicast
// groups (all of them, not only the first 32), peer and the NETLINK_* options. Made again in
// ckpt and bound to the same port id, so a kernel subsystem or a peer that knew the port still
// reaches it. Messages queued unread at dump came from the kernel or from other sockets and
// cannot be sent again from their senders: the dump says they are not kept.
import fs from 'node:fs';
import { closeFd, fcntl, F_SETFL } from '../../sys/files.js';
import { AF, bind, connect, getpeername, getsockname, getsockoptBytes, getsockoptInt, pullFd, setsockoptInt, SO, socket, SOL_SOCKET } from '../../sys/sockets.js';
import type { FileKind, FileRecordBase } from './types.js';

const O_NONBLOCK = 0o4000;
const SOL_NETLINK = 270;
const NETLINK_ADD_MEMBERSHIP = 1;
const NETLINK_LIST_MEMBERSHIPS = 9;
/** The boolean NETLINK_* options getsockopt can read back. */
const OPTIONS: Record<string, number> = {
  NETLINK_PKTINFO: 3, NETLINK_BROADCAST_ERROR: 4, NETLINK_NO_ENOBUFS: 5, NETLINK_LISTEN_ALL_NSID: 8,
  NETLINK_CAP_ACK: 10, NETLINK_EXT_ACK: 11, NETLINK_GET_STRICT_CHK: 12,
};

export interface NetlinkFileRecord extends FileRecordBase {
  kind: 'netlink';
  protocol: number;
  /** SOCK_RAW 3 or SOCK_DGRAM 2 */
  type: number;
  /** The port id it is bound to; 0: never bound. */
  portid: number;
  /** Multicast groups it belongs to (1-based group numbers). */
  groups: number[];
  /** Where it is connected to: port id and groups of the destination. */
  peer?: { portid: number; groups: number };
  /** The NETLINK_* options that are on. */
  options: string[];
  flags: number;
}

interface NetlinkEntry { protocol: number; portid: number; rmem: number }

/**
 * The netlink socket behind descriptor fd: from /proc/PID/net/netlink when it is bound, else
 * (a socket never bound is in no table) asked of the socket itself.
 */
function netlinkEntry(pid: number, fd: number, ino: bigint): NetlinkEntry | undefined {
  let text = '';
  try {
    text = fs.readFileSync(`/proc/${pid}/net/netlink`, 'utf8');
  } catch { /* no network namespace to read */ }
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 10 && f[9] === ino.toString()) return { protocol: Number(f[1]), portid: Number(f[2]) >>> 0, rmem: Number(f[4]) };
  }
  const copy = pullFd(pid, fd);
  try {
    if (getsockoptInt(copy, SOL_SOCKET, SO.DOMAIN) !== AF.NETLINK) return undefined;
    return { protocol: getsockoptInt(copy, SOL_SOCKET, SO.PROTOCOL), portid: 0, rmem: 0 };
  } finally {
    closeFd(copy);
  }
}

/** sockaddr_nl: family, pad, port id, groups. */
function sockaddrNl(portid: number, groups: number): Buffer {
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF.NETLINK, 0);
  sa.writeUInt32LE(portid >>> 0, 4);
  sa.writeUInt32LE(groups >>> 0, 8);
  return sa;
}

export const netlinkSockets: FileKind<NetlinkFileRecord> = {
  kind: 'netlink',

  matches: ({ link, stat, pid, fd }) => link.startsWith('socket:') && netlinkEntry(pid, fd, stat.ino) !== undefined,

  async collect({ pid, fd, stat, fdinfo, warn }) {
    const e = netlinkEntry(pid, fd, stat.ino)!;
    const copy = pullFd(pid, fd);
    try {
      const bitmap = getsockoptBytes(copy, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, 128);
      const groups: number[] = [];
      for (let i = 0; i < bitmap.length * 8; i++) if (bitmap[i >> 3]! & (1 << (i & 7))) groups.push(i + 1);
      const peer = getpeername(copy);
      const peerPort = peer?.readUInt32LE(4) ?? 0;
      const peerGroups = peer?.readUInt32LE(8) ?? 0;
      if (e.rmem > 0) {
        warn(`netlink socket (fd ${fd} of process ${pid}, protocol ${e.protocol}, port ${e.portid}): ${e.rmem} bytes of `
          + 'messages queued unread are not kept');
      }
      return {
        protocol: e.protocol,
        type: getsockoptInt(copy, SOL_SOCKET, SO.TYPE),
        portid: getsockname(copy).readUInt32LE(4),
        groups,
        ...(peerPort || peerGroups ? { peer: { portid: peerPort, groups: peerGroups } } : {}),
        options: Object.keys(OPTIONS).filter((name) => getsockoptInt(copy, SOL_NETLINK, OPTIONS[name]!) !== 0),
        flags: fdinfo.flags & O_NONBLOCK,
      };
    } finally {
      closeFd(copy);
    }
  },

  async open(_ctx, rec) {
    const fd = socket(AF.NETLINK, rec.type, rec.protocol);
    try {
      for (const name of rec.options) setsockoptInt(fd, SOL_NETLINK, OPTIONS[name]!, 1);
      if (rec.portid !== 0) bind(fd, sockaddrNl(rec.portid, 0));
      for (const g of rec.groups) setsockoptInt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, g);
      if (rec.peer) connect(fd, sockaddrNl(rec.peer.portid, rec.peer.groups), `netlink port ${rec.peer.portid}`);
      fcntl(fd, F_SETFL, rec.flags);
    } catch (e) {
      closeFd(fd);
      throw new Error(`netlink socket (protocol ${rec.protocol}, port ${rec.portid}): ${(e as Error).message}`, { cause: e });
    }
    return fd;
  },
};
