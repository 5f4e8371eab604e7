// Unix sockets (stream, datagram, seqpacket): bound names (paths, with their file's mode and
// owner, and abstract names), listening sockets with their backlog and the connections waiting
// to be accepted, connections within the tree (socketpair() ends, or connect() and accept()),
// datagram sockets connected to a name, and what is queued at each socket.
//
// The kernel says it all through sock_diag, by socket inode. At restore ckpt makes the sockets
// again the way they were made: bind, listen, then connect() to the listener and accept() for
// each connection it had accepted (so both ends carry the listener's name again), connect() for
// those still waiting, socketpair() for unnamed pairs. Queued bytes and messages are sent again
// by the socket that sent them (or one bound to the sender's name), so a receiver sees the same
// sender address. A connection to a socket outside the tree cannot be made again: the dump
// refuses it, naming it; a datagram socket connected to an outside name is connected again by
// name.
import fs from 'node:fs';
import path from 'node:path';
import { closeFd, fcntl, F_SETFL } from '../../sys/files.js';
import { listFds, readFdLink } from '../../sys/proc.js';
import {
  accept, AF, bind, connect, getsockoptInt, listen, peekQueue, pullFd, send, setsockoptInt, shutdown, SO, SOCK, socket, socketpair, SOL_SOCKET,
} from '../../sys/sockets.js';
import { UNIX_STATE, unixName, unixSockaddr, unixSockets, type UnixSocketInfo, type UnixSocketTable } from '../../sys/unix-sockets.js';
import type { FileDumpContext, FileKind, FileRecordBase, FileRestoreContext } from './types.js';

const O_NONBLOCK = 0o4000;
const RCV_SHUTDOWN = 1;
const SEND_SHUTDOWN = 2;
const SHUT = { RD: 0, WR: 1 };
const TYPES: Record<number, string> = { 1: 'stream', 2: 'dgram', 5: 'seqpacket' };

/** A message queued at a datagram or seqpacket socket; `from`: the sender's name (base64), if bound. */
export interface UnixQueuedMessage { data: string; from?: string }

export interface UnixFileRecord extends FileRecordBase {
  kind: 'unix';
  ino: number;
  type: number;
  /** O_NONBLOCK */
  flags: number;
  state: 'unconnected' | 'listening' | 'connected';
  /** The name it was bound to (sun_path bytes, base64): its own, or its listener's when accepted. */
  addr?: string;
  /** A relative path name: the directory it is relative to. */
  dir?: string;
  /** Inode of the socket file of a path name. */
  vfsIno?: number;
  /** The socket file of a path name, when it still exists; absent: removed after bind. */
  socketFile?: { mode: number; uid: number; gid: number };
  /** Accepted from a listening socket (its name is the listener's). */
  accepted?: boolean;
  /** Listening: the backlog, and the connecting sockets not accepted yet, in queue order. */
  backlog?: number;
  pending?: number[];
  /** Connected: the peer's inode; 0 once the peer has closed; for a connection not accepted yet, the listener's. */
  peer?: number;
  /** The connection waits on listening socket `peer` to be accepted. */
  waiting?: boolean;
  /** Datagrams: the peer's name, for a peer outside the tree (connected again by name). */
  peerAddr?: string;
  passcred: boolean;
  /** RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2 */
  shutdown: number;
  /** Stream: the bytes waiting to be read, base64. */
  queued?: string;
  /** Datagram and seqpacket: the messages waiting to be read, oldest first. */
  messages?: UnixQueuedMessage[];
}

export class UnsupportedUnixSocketError extends Error {}

function describe(s: UnixSocketInfo): string {
  return `${TYPES[s.type] ?? `type ${s.type}`} unix socket${s.name ? ` ${s.name}` : ''}`;
}

function sameName(a: UnixSocketInfo, b: UnixSocketInfo): boolean {
  return a.addr !== undefined && b.addr !== undefined && a.addr.equals(b.addr) && a.vfsIno === b.vfsIno;
}

/** The sockets of the namespace, and the inodes of those some process of the tree holds. */
function tables(ctx: FileDumpContext): { all: UnixSocketTable; held: Set<number> } {
  let t = ctx.seen.get('unix') as { all: UnixSocketTable; held: Set<number> } | undefined;
  if (!t) {
    const held = new Set<number>();
    for (const pid of ctx.tree) {
      for (const fd of listFds(pid)) {
        const m = /^socket:\[(\d+)\]$/.exec(readFdLink(pid, fd));
        if (m) held.add(Number(m[1]));
      }
    }
    t = { all: unixSockets(), held };
    ctx.seen.set('unix', t);
  }
  return t;
}

/** Whether a connected stream socket with a name got it by being accepted (its listener's). */
function isAccepted(s: UnixSocketInfo, all: UnixSocketTable): boolean {
  if (s.addr === undefined) return false;
  // Accepted sockets share their listener's name; a name is otherwise held by one socket.
  for (const o of all.sockets.values()) if (o.ino !== s.ino && sameName(o, s)) return true;
  const peer = s.peer ? all.sockets.get(s.peer) : undefined;
  return peer !== undefined && peer.addr === undefined;
}

/** Where a path name is: the directory a relative name is relative to, and its file if it is still there. */
function locate(pid: number, s: UnixSocketInfo): Pick<UnixFileRecord, 'dir' | 'socketFile'> {
  const name = s.name!;
  if (name.startsWith('@')) return {};
  const dir = name.startsWith('/') ? undefined : fs.readlinkSync(`/proc/${pid}/cwd`);
  const st = fs.statSync(`/proc/${pid}/root${path.resolve(dir ?? '/', name)}`, { throwIfNoEntry: false });
  const socketFile = st?.isSocket() && st.ino === s.vfsIno ? { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid } : undefined;
  return { ...(dir !== undefined ? { dir } : {}), ...(socketFile ? { socketFile } : {}) };
}

/** What is queued at the socket, read without taking it. */
function queuedAt(pid: number, fd: number, s: UnixSocketInfo): Pick<UnixFileRecord, 'queued' | 'messages'> {
  if (s.rqueue === 0 || s.state === UNIX_STATE.LISTEN) return {};
  const copy = pullFd(pid, fd);
  try {
    const chunks = peekQueue(copy, s.type === SOCK.STREAM ? Math.max(s.rqueue, 4096) : 1 << 20);
    if (s.type === SOCK.STREAM) return { queued: Buffer.concat(chunks.map((c) => c.data)).toString('base64') };
    // A sender's sockaddr_un: the family, then sun_path (nothing more when it was not bound).
    return { messages: chunks.map((c) => ({ data: c.data.toString('base64'), ...(c.from.length > 2 ? { from: c.from.subarray(2).toString('base64') } : {}) })) };
  } catch (e) {
    throw new UnsupportedUnixSocketError(`unsupported fd ${fd}: ${describe(s)} in process ${pid}: ${(e as Error).message}`);
  } finally {
    closeFd(copy);
  }
}

export const unixSocketFiles: FileKind<UnixFileRecord> = {
  kind: 'unix',

  matches: (ctx) => ctx.link.startsWith('socket:') && tables(ctx).all.sockets.has(Number(ctx.stat.ino)),

  async collect(ctx) {
    const { pid, fd, stat, fdinfo } = ctx;
    const { all, held } = tables(ctx);
    const s = all.sockets.get(Number(stat.ino))!;
    const refuse = (why: string) => new UnsupportedUnixSocketError(`unsupported fd ${fd}: ${describe(s)} ${why} in process ${pid}`);
    const copy = pullFd(pid, fd);
    let passcred: boolean;
    try {
      passcred = getsockoptInt(copy, SOL_SOCKET, SO.PASSCRED) !== 0;
    } finally {
      closeFd(copy);
    }
    const rec: Omit<UnixFileRecord, 'id' | 'kind'> = {
      ino: s.ino, type: s.type, flags: fdinfo.flags & O_NONBLOCK, state: 'unconnected', passcred, shutdown: s.shutdown,
    };
    if (s.addr) {
      rec.addr = s.addr.toString('base64');
      if (s.vfsIno !== undefined) rec.vfsIno = s.vfsIno;
      Object.assign(rec, locate(pid, s));
    }

    if (s.state === UNIX_STATE.LISTEN) {
      rec.state = 'listening';
      rec.backlog = s.backlog;
      rec.pending = s.pending ?? [];
      for (const c of rec.pending) {
        if (c !== 0 && !held.has(c)) throw refuse('has a connection from outside the tree waiting to be accepted');
        // What a client sent before being accepted sits in a socket no descriptor reaches.
        if (all.unaccepted.some((u) => (u.peer ?? 0) === c && u.rqueue > 0)) {
          throw refuse('has a connection waiting to be accepted with data already sent on it');
        }
      }
      return rec;
    }

    const peer = s.peer ? all.sockets.get(s.peer) : undefined;
    const waitingOn = [...all.sockets.values()].find((l) => l.state === UNIX_STATE.LISTEN && l.pending?.includes(s.ino));
    if (s.type === SOCK.DGRAM) {
      if (peer) {
        rec.state = 'connected';
        rec.peer = peer.ino;
        if (!held.has(peer.ino)) {
          if (!peer.addr) throw refuse('connected to an unnamed socket outside the tree');
          rec.peerAddr = peer.addr.toString('base64');
        }
      }
    } else if (waitingOn) {
      if (!held.has(waitingOn.ino)) throw refuse(`connecting to ${describe(waitingOn)} outside the tree`);
      Object.assign(rec, { state: 'connected', peer: waitingOn.ino, waiting: true });
    } else if (s.state === UNIX_STATE.ESTABLISHED) {
      rec.state = 'connected';
      rec.peer = peer?.ino ?? 0;
      if (peer && !held.has(peer.ino)) throw refuse(`connected to ${describe(peer)} outside the tree`);
      if (isAccepted(s, all)) {
        rec.accepted = true;
        delete rec.socketFile;
      } else if (peer && !isAccepted(peer, all) && s.addr && peer.addr) {
        throw refuse(`connected to ${describe(peer)}: cannot tell which end was accepted`);
      }
    }
    return { ...rec, ...queuedAt(pid, fd, s) };
  },

  unavailable(rec) {
    if (!rec.addr || rec.accepted) return undefined;
    const addr = addrOf(rec);
    if (isAbstract(addr)) return undefined;
    const file = path.resolve(rec.dir ?? '/', unixName(addr));
    if (!fs.existsSync(path.dirname(file))) return `unix socket ${file}: its directory does not exist here`;
    return pathTaken(file);
  },

  async open(ctx, rec) {
    const made = madeSockets(ctx);
    if (made[rec.ino] === undefined) await make(ctx, rec, made);
    const fd = made[rec.ino]!;
    fcntl(fd, F_SETFL, rec.flags & O_NONBLOCK);
    if (rec.passcred) setsockoptInt(fd, SOL_SOCKET, SO.PASSCRED, 1);
    return fd;
  },
};

/** ckpt's descriptor of every socket made so far, by the socket's inode in the image. */
type MadeSockets = Record<string, number>;

function madeSockets(ctx: FileRestoreContext): MadeSockets {
  let made = ctx.shared.get('unix') as MadeSockets | undefined;
  if (!made) ctx.shared.set('unix', made = {});
  return made;
}

const unixRecords = (ctx: FileRestoreContext) => ctx.files.filter((f): f is UnixFileRecord => f.kind === 'unix');
const recordOf = (ctx: FileRestoreContext, ino: number) => unixRecords(ctx).find((r) => r.ino === ino);
const addrOf = (rec: UnixFileRecord) => Buffer.from(rec.addr!, 'base64');
const isAbstract = (addr: Buffer) => addr[0] === 0;

/** The sockaddr to connect or send to a named socket, from anywhere (a relative path made absolute). */
function reachable(rec: UnixFileRecord): Buffer {
  const addr = addrOf(rec);
  if (isAbstract(addr) || !rec.dir) return unixSockaddr(addr);
  return unixSockaddr(Buffer.from(path.resolve(rec.dir, unixName(addr))));
}

/**
 * Binds fd to rec's name. A stale socket file of the dumped socket (its process ended) is
 * replaced; a live socket's is not. Returns what to do once every connection to it is made:
 * give the file its mode and owner, or remove it if it was removed after bind.
 */
function bindName(fd: number, rec: UnixFileRecord): () => void {
  const addr = addrOf(rec);
  if (isAbstract(addr)) {
    bind(fd, unixSockaddr(addr));
    return () => {};
  }
  const name = unixName(addr);
  const file = path.resolve(rec.dir ?? '/', name);
  const taken = pathTaken(file);
  if (taken) throw new Error(taken);
  fs.rmSync(file, { force: true }); // a stale socket file of the dumped socket
  // A relative name is bound as such (getsockname shows it) from its directory.
  const cwd = process.cwd();
  if (rec.dir) process.chdir(rec.dir);
  try {
    bind(fd, unixSockaddr(addr));
  } finally {
    if (rec.dir) process.chdir(cwd);
  }
  return () => {
    if (!rec.socketFile) fs.rmSync(file, { force: true });
    else {
      fs.chownSync(file, rec.socketFile.uid, rec.socketFile.gid);
      fs.chmodSync(file, rec.socketFile.mode);
    }
  };
}

/** Why a socket cannot be bound at file: a file that is not a socket, or a running socket's. */
function pathTaken(file: string): string | undefined {
  const there = fs.lstatSync(file, { throwIfNoEntry: false });
  if (!there) return undefined;
  if (!there.isSocket()) return `cannot bind unix socket ${file}: a file that is not a socket is there`;
  if ([...unixSockets().sockets.values()].some((s) => s.vfsIno === there.ino && s.addr !== undefined)) {
    return `cannot bind unix socket ${file}: a running socket is bound there`;
  }
  return undefined;
}

function newSocket(rec: UnixFileRecord): number {
  return socket(AF.UNIX, rec.type, 0);
}

async function make(ctx: FileRestoreContext, rec: UnixFileRecord, made: MadeSockets): Promise<void> {
  if (rec.state === 'listening') return makeListener(ctx, rec, made);
  if (rec.state === 'connected' && rec.type !== SOCK.DGRAM) {
    if (rec.waiting) {
      // The listener connects those waiting on it, in their order.
      const listener = recordOf(ctx, rec.peer!);
      if (!listener) throw new Error(`unix socket ${rec.ino} waits on listening socket ${rec.peer}, which is not in the image`);
      await ctx.fdOf(listener.id);
      return;
    }
    const peer = rec.peer ? recordOf(ctx, rec.peer) : undefined;
    const server = rec.accepted ? rec : peer?.accepted ? peer : undefined;
    if (server) return makeAccepted(ctx, server, made);
    return makePair(rec, peer, made);
  }
  const peer = rec.peer ? recordOf(ctx, rec.peer) : undefined;
  if (rec.state === 'connected' && peer && !peer.addr) return makePair(rec, peer, made);
  const fd = newSocket(rec);
  // Registered before anything else: a sender or peer made meanwhile finds it.
  made[rec.ino] = fd;
  const named = rec.addr ? bindName(fd, rec) : () => {};
  await deliverMessages(ctx, rec);
  if (rec.state === 'connected') {
    if (peer) {
      await ctx.fdOf(peer.id);
      connect(fd, reachable(peer), unixName(addrOf(peer)));
    } else {
      const to = Buffer.from(rec.peerAddr!, 'base64');
      connect(fd, unixSockaddr(to), unixName(to));
    }
  }
  named();
  shutdownAs(fd, rec);
}

/** A listening socket, with the connections it had accepted and those still waiting, in order. */
async function makeListener(ctx: FileRestoreContext, rec: UnixFileRecord, made: MadeSockets): Promise<void> {
  const fd = newSocket(rec);
  made[rec.ino] = fd;
  const named = rec.addr ? bindName(fd, rec) : () => {};
  listen(fd, rec.backlog ?? 128);
  const mine = (r: UnixFileRecord) => r.accepted && r.addr === rec.addr && r.vfsIno === rec.vfsIno && made[r.ino] === undefined;
  for (const server of unixRecords(ctx).filter(mine)) connectThrough(fd, reachable(rec), server, ctx, made);
  for (const ino of rec.pending ?? []) {
    // 0: a client that closed before being accepted; accept() will give its end of file.
    const client = ino ? recordOf(ctx, ino) : undefined;
    const c = newSocket(rec);
    if (client) made[client.ino] = c;
    if (client?.addr) bindName(c, client)();
    connect(c, reachable(rec), unixName(addrOf(rec)));
    if (!client) closeFd(c);
  }
  named();
}

/** A connection accepted from a listener that is not in the image: a stand-in listener makes it. */
async function makeAccepted(ctx: FileRestoreContext, server: UnixFileRecord, made: MadeSockets): Promise<void> {
  const listener = unixRecords(ctx).find((r) => r.state === 'listening' && r.addr === server.addr && r.vfsIno === server.vfsIno);
  if (listener) {
    await ctx.fdOf(listener.id);
    return;
  }
  const standIn = newSocket(server);
  try {
    const named = bindName(standIn, { ...server, socketFile: undefined });
    listen(standIn, 1);
    connectThrough(standIn, reachable(server), server, ctx, made);
    named();
  } finally {
    closeFd(standIn);
  }
}

/** One accepted connection again: its client connects, the listener accepts. */
function connectThrough(listener: number, to: Buffer, server: UnixFileRecord, ctx: FileRestoreContext, made: MadeSockets): void {
  const client = server.peer ? recordOf(ctx, server.peer) : undefined;
  const c = newSocket(server);
  if (client) made[client.ino] = c;
  if (client?.addr) bindName(c, client)();
  connect(c, to, unixName(addrOf(server)));
  const s = accept(listener);
  made[server.ino] = s;
  fillPair(server, s, client, c);
  if (!client) closeFd(c); // the client had closed: the server end reads what was left, then the end
}

/** Two unnamed ends (socketpair()), or one whose peer has closed. */
function makePair(rec: UnixFileRecord, peer: UnixFileRecord | undefined, made: MadeSockets): void {
  const [a, b] = socketpair(rec.type);
  made[rec.ino] = a;
  if (peer) made[peer.ino] = b;
  if (rec.addr) bindName(a, rec)();
  if (peer?.addr) bindName(b, peer)();
  fillPair(rec, a, peer, b);
  if (!peer) closeFd(b); // the peer had closed: this end reads what was left, then the end
}

/** What waited at each end is sent by the other; then each end's shutdown state. */
function fillPair(a: UnixFileRecord, aFd: number, b: UnixFileRecord | undefined, bFd: number): void {
  for (const [to, fromFd] of [[a, bFd], [b, aFd]] as const) {
    if (!to) continue;
    if (to.queued) send(fromFd, Buffer.from(to.queued, 'base64'));
    for (const m of to.messages ?? []) send(fromFd, Buffer.from(m.data, 'base64'));
  }
  shutdownAs(aFd, a);
  if (b) shutdownAs(bFd, b);
}

function shutdownAs(fd: number, rec: UnixFileRecord): void {
  if (rec.shutdown & SEND_SHUTDOWN) shutdown(fd, SHUT.WR);
  if (rec.shutdown & RCV_SHUTDOWN) shutdown(fd, SHUT.RD);
}

/**
 * The messages queued at a datagram socket, sent to it again by their senders: the socket of
 * the image bound to the sender's name, or a stand-in bound to it, or an unnamed one.
 */
async function deliverMessages(ctx: FileRestoreContext, rec: UnixFileRecord): Promise<void> {
  if (!rec.messages?.length) return;
  if (!rec.addr) throw new Error(`unix socket ${rec.ino} has messages queued but no name to send them to`);
  const to = reachable(rec);
  for (const m of rec.messages) {
    const from = m.from ? Buffer.from(m.from, 'base64') : undefined;
    const sender = from && unixRecords(ctx).find((r) => r.addr !== undefined && addrOf(r).equals(from) && r.state !== 'listening');
    if (sender) {
      send(await ctx.fdOf(sender.id), Buffer.from(m.data, 'base64'), to);
      continue;
    }
    const standIn = socket(AF.UNIX, rec.type, 0);
    let boundPath: string | undefined;
    try {
      if (from) {
        try {
          bind(standIn, unixSockaddr(from));
        } catch (e) {
          ctx.warn(`a message queued at unix socket ${unixName(addrOf(rec))} from ${unixName(from)} is dropped: `
            + `that name cannot be bound here (${(e as Error).message})`);
          continue;
        }
        if (!isAbstract(from)) boundPath = unixName(from);
      }
      send(standIn, Buffer.from(m.data, 'base64'), to);
    } finally {
      closeFd(standIn);
      if (boundPath) fs.rmSync(boundPath, { force: true });
    }
  }
}

/** The socket in words, for `ckpt show`. */
export function describeUnixFile(rec: UnixFileRecord): string {
  const addr = rec.addr ? Buffer.from(rec.addr, 'base64') : undefined;
  const name = addr ? ` ${unixName(addr)}` : '';
  const out = [`unix ${TYPES[rec.type] ?? `type ${rec.type}`} socket${name} (${rec.ino})`];
  if (rec.state === 'listening') out.push(`listening, backlog ${rec.backlog}, ${rec.pending?.length ?? 0} waiting`);
  if (rec.state === 'connected') {
    if (rec.waiting) out.push(`connecting to ${rec.peer}`);
    else if (rec.peerAddr) out.push(`connected to ${unixName(Buffer.from(rec.peerAddr, 'base64'))} outside the tree`);
    else out.push(rec.peer ? `${rec.accepted ? 'accepted, ' : ''}connected to ${rec.peer}` : 'peer closed');
  }
  if (rec.shutdown) out.push(`shut down for ${['', 'reading', 'writing', 'reading and writing'][rec.shutdown]}`);
  if (addr && !isAbstract(addr) && !rec.socketFile && !rec.accepted) out.push('file removed');
  if (rec.queued) out.push(`${Buffer.from(rec.queued, 'base64').length} bytes queued`);
  if (rec.messages?.length) out.push(`${rec.messages.length} messages queued`);
  return out.join(', ');
}
