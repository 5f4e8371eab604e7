// memfd descriptors: name, size, contents (holes skipped), seals, flags and offset. When the
// same memfd is also mapped, the mapping is restored through this very object (see memory.ts).
import fs from 'node:fs';
import { dataExtents, F_ADD_SEALS, F_GET_SEALS, F_SETFL, fcntl, ftruncate, lseek, memfdCreate, closeFd } from '../../sys/files.js';
import { pullFd } from '../../sys/sockets.js';
import type { FileKind, FileRecordBase } from './types.js';

const PREFIX = '/memfd:';
const DELETED = ' (deleted)';
const O_NONBLOCK = 0o4000;
const O_ACCMODE = 3;

export interface MemfdFileRecord extends FileRecordBase {
  kind: 'memfd';
  name: string;
  size: number;
  /** Contents: [offset, length] extents stored back to back in the blob. */
  extents: Array<[number, number]>;
  blob: string | null;
  seals: number;
  flags: number;
  pos: string;
  /** The shared memory object's id as mappings name it ("MM:mm:inode"). */
  shmem_id: string;
}

const hex2 = (n: bigint) => n.toString(16).padStart(2, '0');

export const memfds: FileKind<MemfdFileRecord> = {
  kind: 'memfd',

  matches: ({ link, stat }) => stat.isFile() && link.startsWith(PREFIX),

  async collect(ctx) {
    const name = ctx.link.slice(PREFIX.length).replace(new RegExp(`${DELETED.replace(/[()]/g, '\\$&')}$`), '');
    const copy = pullFd(ctx.pid, ctx.fd);
    try {
      const size = Number(ctx.stat.size);
      const extents = dataExtents(copy, 0n, BigInt(size)).map(([a, b]) => [Number(a), Number(b - a)] as [number, number]);
      const total = extents.reduce((s, [, len]) => s + len, 0);
      const data = Buffer.alloc(total);
      let at = 0;
      for (const [off, len] of extents) {
        let got = 0;
        while (got < len) got += fs.readSync(copy, data, at + got, len - got, off + got);
        at += len;
      }
      const dev = ctx.stat.dev;
      return {
        name,
        size,
        extents,
        blob: total > 0 ? await ctx.saveBlob(`memfd-${ctx.stat.ino}.img`, data) : null,
        seals: fcntl(copy, F_GET_SEALS),
        flags: ctx.fdinfo.flags & (O_NONBLOCK | O_ACCMODE),
        pos: ctx.fdinfo.pos.toString(),
        shmem_id: `${hex2((dev >> 8n) & 0xfffn)}:${hex2(dev & 0xffn)}:${ctx.stat.ino}`,
      };
    } finally {
      closeFd(copy);
    }
  },

  async open(ctx, rec) {
    const fd = memfdCreate(rec.name);
    try {
      ftruncate(fd, rec.size);
      if (rec.blob) {
        const data = await ctx.blob(rec.blob);
        let at = 0;
        for (const [off, len] of rec.extents) {
          let done = 0;
          while (done < len) done += fs.writeSync(fd, data, at + done, len - done, off + done);
          at += len;
        }
      }
      if (rec.seals) fcntl(fd, F_ADD_SEALS, rec.seals);
      if (rec.pos !== '0') lseek(fd, BigInt(rec.pos));
      fcntl(fd, F_SETFL, rec.flags & O_NONBLOCK);
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    return fd;
  },
};

