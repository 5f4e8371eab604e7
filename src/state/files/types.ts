// What every kind of open file module provides: its dump and its restore, side by side.
//
// The image keeps open file descriptions (files.json, shared by the whole tree) apart from the
// descriptor tables that point at them (fds-<pid>.json), so that a description shared by dup()
// or inherited across fork() is restored once and shared again.
import type fs from 'node:fs';
import type { Fdinfo } from '../../sys/proc.js';

export interface FileRecordBase {
  /** Number of the open file description within the image. */
  id: number;
  kind: string;
}

/** One slot of a process's descriptor table. */
export interface FdEntry {
  fd: number;
  /** FD_CLOEXEC: a property of the descriptor, not of the open file. */
  cloexec: boolean;
  file: number;
}

export interface FileDumpContext {
  pid: number;
  fd: number;
  /** readlink of /proc/PID/fd/N. */
  link: string;
  /** stat of the open file (following /proc/PID/fd/N, so deleted files too). */
  stat: fs.BigIntStats;
  fdinfo: Fdinfo;
  /** Stores data in the image (e.g. a deleted file's contents); returns the blob's name. */
  saveBlob(name: string, data: Buffer): Promise<string>;
  /** Per-dump memory of a kind (e.g. pipes whose contents are saved already). */
  seen: Map<string, unknown>;
  /** The live processes of the tree being dumped (e.g. to tell whether a pty's master, or a socket's peer, is in it). */
  tree: readonly number[];
  /** Dumping a shell job: terminals outside the tree are recorded as such, not refused. */
  shellJob: boolean;
  /** Something the image will not hold, said to the user. */
  warn(message: string): void;
}

export interface FileRestoreContext {
  blob(name: string): Promise<Buffer>;
  /** Registers a path ckpt created for the restore, removed once every descriptor is in place. */
  addTemporary(path: string): void;
  /** Per-restore memory of a kind (e.g. the pipe both ends come from). */
  shared: Map<string, unknown>;
  /** ckpt's descriptor of another open file of the image (e.g. an epoll's target). */
  fdOf(id: number): Promise<number>;
  /** Every open file of the image (kinds whose files are made together look for each other). */
  files: readonly FileRecordBase[];
  /** Reports what a restore could not bring back as it was, without failing it. */
  warn(message: string): void;
}

export interface FileKind<R extends FileRecordBase = FileRecordBase> {
  kind: string;
  /** Whether this module handles the open file behind the descriptor. */
  matches(ctx: FileDumpContext): boolean;
  collect(ctx: FileDumpContext): Promise<Omit<R, 'id' | 'kind'>>;
  /**
   * Opens the description in ckpt itself; returns ckpt's descriptor. Restored processes take
   * their copies from it (pidfd_getfd), so every process sharing it shares one description.
   */
  open(ctx: FileRestoreContext, rec: R): Promise<number>;
  /**
   * What on this machine would stop open() (a path gone, another file in its place), asked of
   * every file before anything is restored; undefined when nothing does.
   */
  unavailable?(rec: R): string | undefined;
}

/** Flags that only mean something at open time and are not kept in f_flags. */
export const OPEN_ONLY_FLAGS = 0o100 | 0o200 | 0o1000; // O_CREAT | O_EXCL | O_TRUNC
export const O_CLOEXEC = 0o2000000;
