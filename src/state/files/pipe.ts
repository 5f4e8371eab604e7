// Pipes and FIFOs: each end is its own open file description; the pipe (its capacity and the
// bytes queued in it) is saved once, with the first end met. The bytes are copied out with
// tee(), which leaves them queued: a dump that fails or leaves the process running takes
// nothing away. A FIFO is the same pipe reached through a path.
import fs from 'node:fs';
import { closeFd, fcntl, F_GETPIPE_SZ, F_SETFL, F_SETPIPE_SZ, pipe, tee } from '../../sys/files.js';
import { O_CLOEXEC, type FileDumpContext, type FileKind, type FileRecordBase, type FileRestoreContext } from './types.js';

const O_ACCMODE = 3;
const O_WRONLY = 1;
const O_NONBLOCK = 0o4000;

export interface PipeFileRecord extends FileRecordBase {
  kind: 'pipe';
  /** The pipe's inode number: both ends name the same pipe. */
  pipe: string;
  end: 'read' | 'write';
  flags: number;
  /** Set on the first end of each pipe: capacity and queued bytes. */
  state?: PipeState;
}

interface RestoredPipe { read: number; write: number }

/** The bytes queued in the pipe behind /proc/PID/fd/N, without consuming them. */
function queuedBytes(pid: number, fd: number, size: number): Buffer {
  const reader = fs.openSync(`/proc/${pid}/fd/${fd}`, fs.constants.O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  const [r, w] = pipe();
  try {
    fcntl(w, F_SETPIPE_SZ, size);
    const n = tee(reader, w, size);
    const out = Buffer.alloc(n);
    let got = 0;
    while (got < n) got += fs.readSync(r, out, got, n - got, null);
    return out;
  } finally {
    closeFd(r);
    closeFd(w);
    fs.closeSync(reader);
  }
}

interface PipeState { size: number; data: string | null }

/** Capacity and queued bytes of the pipe behind /proc/PID/fd/N, the bytes saved as blob `name`. */
async function savePipeState(ctx: FileDumpContext, name: string): Promise<PipeState> {
  const probe = fs.openSync(`/proc/${ctx.pid}/fd/${ctx.fd}`, fs.constants.O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  let size: number;
  try {
    size = fcntl(probe, F_GETPIPE_SZ);
  } finally {
    fs.closeSync(probe);
  }
  const data = queuedBytes(ctx.pid, ctx.fd, size);
  return { size, data: data.length ? await ctx.saveBlob(name, data) : null };
}

/** Gives a new pipe (through its write end) the saved capacity and queued bytes. */
async function restorePipeState(ctx: FileRestoreContext, writeEnd: number, state: PipeState): Promise<void> {
  fcntl(writeEnd, F_SETPIPE_SZ, state.size);
  if (!state.data) return;
  const data = await ctx.blob(state.data);
  let done = 0;
  while (done < data.length) done += fs.writeSync(writeEnd, data, done, data.length - done);
}

export const pipes: FileKind<PipeFileRecord> = {
  kind: 'pipe',

  matches: ({ stat, link }) => stat.isFIFO() && link.startsWith('pipe:'),

  async collect(ctx) {
    const ino = ctx.stat.ino.toString();
    const rec: Omit<PipeFileRecord, 'id' | 'kind'> = {
      pipe: ino,
      end: (ctx.fdinfo.flags & O_ACCMODE) === O_WRONLY ? 'write' : 'read',
      flags: ctx.fdinfo.flags & ~O_CLOEXEC,
    };
    const key = `pipe:${ino}`;
    if (!ctx.seen.has(key)) {
      ctx.seen.set(key, true);
      rec.state = await savePipeState(ctx, `pipe-${ino}.img`);
    }
    return rec;
  },

  async open(ctx, rec) {
    const key = `pipe:${rec.pipe}`;
    let p = ctx.shared.get(key) as RestoredPipe | undefined;
    if (!p) {
      const [read, write] = pipe();
      p = { read, write };
      ctx.shared.set(key, p);
    }
    if (rec.state) await restorePipeState(ctx, p.write, rec.state);
    const fd = rec.end === 'read' ? p.read : p.write;
    fcntl(fd, F_SETFL, rec.flags & O_NONBLOCK);
    return fd;
  },
};

export interface FifoFileRecord extends FileRecordBase {
  kind: 'fifo';
  path: string;
  end: 'read' | 'write' | 'both';
  flags: number;
  /** Set on the first description of each FIFO met: capacity and queued bytes. */
  state?: PipeState;
}

const O_RDWR = 2;

/** What ckpt holds of a FIFO while restoring: one read-write description keeps it open. */
interface RestoredFifo { holder: number }

export const fifos: FileKind<FifoFileRecord> = {
  kind: 'fifo',

  matches: ({ stat, link }) => stat.isFIFO() && link.startsWith('/'),

  async collect(ctx) {
    const mode = ctx.fdinfo.flags & O_ACCMODE;
    const rec: Omit<FifoFileRecord, 'id' | 'kind'> = {
      path: ctx.link,
      end: mode === O_RDWR ? 'both' : mode === O_WRONLY ? 'write' : 'read',
      flags: ctx.fdinfo.flags & ~O_CLOEXEC,
    };
    const key = `fifo:${ctx.stat.dev}:${ctx.stat.ino}`;
    if (!ctx.seen.has(key)) {
      ctx.seen.set(key, true);
      rec.state = await savePipeState(ctx, `fifo-${ctx.stat.ino}.img`);
    }
    return rec;
  },

  unavailable(rec) {
    const st = fs.statSync(rec.path, { throwIfNoEntry: false });
    if (!st) return `fifo ${rec.path} does not exist here`;
    return st.isFIFO() ? undefined : `${rec.path} is no longer a fifo`;
  },

  async open(ctx, rec) {
    const key = `fifo:${rec.path}`;
    let f = ctx.shared.get(key) as RestoredFifo | undefined;
    if (!f) {
      // Read-write never blocks and keeps a reader, so the write ends below can open too.
      f = { holder: fs.openSync(rec.path, O_RDWR | O_NONBLOCK | O_CLOEXEC) };
      ctx.shared.set(key, f);
    }
    if (rec.state) await restorePipeState(ctx, f.holder, rec.state);
    const mode = rec.end === 'both' ? O_RDWR : rec.end === 'write' ? O_WRONLY : fs.constants.O_RDONLY;
    const fd = fs.openSync(rec.path, mode | O_NONBLOCK | O_CLOEXEC);
    fcntl(fd, F_SETFL, rec.flags & O_NONBLOCK);
    return fd;
  },
};
