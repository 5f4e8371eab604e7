// Regular files and directories, opened by path. A file deleted while open is saved whole and
// recreated (as a temporary file, unlinked again once open) at restore.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import type { FdKind, FdRecordBase } from './types.js';

const AT_FDCWD = -100;
const SEEK_SET = 0;
/** Flags that only mean something at open time and are not kept in f_flags. */
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_TRUNC = 0o1000;
const O_CLOEXEC = 0o2000000;

export interface RegularFdRecord extends FdRecordBase {
  kind: 'regular';
  path: string;
  flags: number;
  pos: string;
  type: 'file' | 'directory';
  /** Present when the file was deleted: its contents and mode, to recreate it. */
  deleted?: { blob: string; mode: number };
}

const DELETED = ' (deleted)';

export const regularFiles: FdKind<RegularFdRecord> = {
  kind: 'regular',

  matches: ({ stat }) => stat.isFile() || stat.isDirectory(),

  async collect(ctx) {
    const deleted = ctx.link.endsWith(DELETED) && ctx.stat.nlink === 0n;
    const rec: Omit<RegularFdRecord, 'fd' | 'kind' | 'cloexec'> = {
      path: deleted ? ctx.link.slice(0, -DELETED.length) : ctx.link,
      flags: ctx.fdinfo.flags & ~O_CLOEXEC,
      pos: ctx.fdinfo.pos.toString(),
      type: ctx.stat.isDirectory() ? 'directory' : 'file',
    };
    if (deleted) {
      const data = fs.readFileSync(`/proc/${ctx.pid}/fd/${ctx.fd}`);
      rec.deleted = {
        blob: await ctx.saveBlob(`file-${ctx.pid}-${ctx.fd}.img`, data),
        mode: Number(ctx.stat.mode & 0o7777n),
      };
    }
    return rec;
  },

  async open(ctx, rec) {
    let openPath = rec.path;
    if (rec.deleted) {
      const dir = fs.existsSync(path.dirname(rec.path)) ? path.dirname(rec.path) : '/tmp';
      openPath = path.join(dir, `.ckpt-ghost-${crypto.randomBytes(6).toString('hex')}`);
      fs.writeFileSync(openPath, await ctx.blob(rec.deleted.blob), { mode: 0o600 });
      fs.chmodSync(openPath, rec.deleted.mode);
      ctx.addTemporary(openPath);
    }
    const fd = Number(ctx.remote.call('openat', AT_FDCWD, ctx.scratch.put(Buffer.from(`${openPath}\0`)),
      rec.flags & ~(O_CREAT | O_EXCL | O_TRUNC), 0));
    if (rec.pos !== '0') ctx.remote.call('lseek', fd, BigInt(rec.pos), SEEK_SET);
    return fd;
  },
};
