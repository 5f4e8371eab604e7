// Regular files and directories, opened by path. A file deleted while open is saved whole and
// recreated (as a temporary file, unlinked again once open) at restore.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { lseek } from '../../sys/files.js';
import { O_CLOEXEC, OPEN_ONLY_FLAGS, type FileKind, type FileRecordBase } from './types.js';

export interface RegularFileRecord extends FileRecordBase {
  kind: 'regular';
  path: string;
  flags: number;
  pos: string;
  type: 'file' | 'directory';
  /** Present when the file was deleted: its contents and mode, to recreate it. */
  deleted?: { blob: string; mode: number };
}

const DELETED = ' (deleted)';

export const regularFiles: FileKind<RegularFileRecord> = {
  kind: 'regular',

  matches: ({ stat }) => stat.isFile() || stat.isDirectory(),

  async collect(ctx) {
    const deleted = ctx.link.endsWith(DELETED) && ctx.stat.nlink === 0n;
    const rec: Omit<RegularFileRecord, 'id' | 'kind'> = {
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

  unavailable(rec) {
    // Files of /proc name processes that the restore is yet to make.
    if (rec.deleted || rec.path.startsWith('/proc/')) return undefined;
    const st = fs.statSync(rec.path, { throwIfNoEntry: false });
    if (!st) return `${rec.type} ${rec.path} does not exist here`;
    if (rec.type === 'directory' ? !st.isDirectory() : !st.isFile()) return `${rec.path} is no longer a ${rec.type}`;
    return undefined;
  },

  async open(ctx, rec) {
    let openPath = rec.path;
    if (rec.deleted) {
      // Recreated under its own name where that is free, so that /proc/PID/fd reads as before
      // ("PATH (deleted)"), and unlinked again once every process holds it.
      const dir = fs.existsSync(path.dirname(rec.path)) ? path.dirname(rec.path) : '/tmp';
      openPath = fs.existsSync(rec.path) ? path.join(dir, `.ckpt-ghost-${crypto.randomBytes(6).toString('hex')}`) : rec.path;
      fs.writeFileSync(openPath, await ctx.blob(rec.deleted.blob), { mode: 0o600, flag: 'wx' });
      fs.chmodSync(openPath, rec.deleted.mode);
      ctx.addTemporary(openPath);
    }
    const fd = fs.openSync(openPath, (rec.flags & ~OPEN_ONLY_FLAGS) | O_CLOEXEC);
    if (rec.pos !== '0') lseek(fd, BigInt(rec.pos));
    return fd;
  },
};
