// What every kind of file descriptor module provides: its dump and its restore, side by side.
import type fs from 'node:fs';
import type { Fdinfo } from '../../sys/proc.js';
import type { RemoteScratch, RemoteThread } from '../../sys/remote.js';

export interface FdRecordBase {
  fd: number;
  kind: string;
  /** FD_CLOEXEC on this descriptor (a property of the fd, not of the open file). */
  cloexec: boolean;
}

export interface FdDumpContext {
  pid: number;
  fd: number;
  /** readlink of /proc/PID/fd/N. */
  link: string;
  /** stat of the open file (following /proc/PID/fd/N, so deleted files too). */
  stat: fs.BigIntStats;
  fdinfo: Fdinfo;
  /** Stores data in the image (e.g. a deleted file's contents); returns the blob's name. */
  saveBlob(name: string, data: Buffer): Promise<string>;
}

export interface FdRestoreContext {
  remote: RemoteThread;
  scratch: RemoteScratch;
  blob(name: string): Promise<Buffer>;
  /** Registers a path ckpt created for the restore, removed once every fd is open. */
  addTemporary(path: string): void;
}

export interface FdKind<R extends FdRecordBase = FdRecordBase> {
  kind: string;
  /** Whether this module handles the descriptor. */
  matches(ctx: FdDumpContext): boolean;
  collect(ctx: FdDumpContext): Promise<Omit<R, 'fd' | 'kind' | 'cloexec'>>;
  /** Opens the file in the restored process; returns the descriptor it got there. */
  open(ctx: FdRestoreContext, rec: R): Promise<number>;
}
