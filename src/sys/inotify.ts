// inotify instances from ckpt's side, and the file handles (open_by_handle_at) by which
// /proc/PID/fdinfo names the inodes they watch.
import { syscall, trySyscall } from './libc.js';

const NR = { ioctl: 16, inotify_add_watch: 254, inotify_rm_watch: 255, inotify_init1: 294, name_to_handle_at: 303, open_by_handle_at: 304 };
const O_CLOEXEC = 0o2000000;
const FIONREAD = 0x541b;
const AT_EMPTY_PATH = 0x1000;
const MAX_HANDLE_SZ = 128;

/** A new inotify instance in this process (flags: IN_NONBLOCK; close-on-exec added). */
export function inotifyInit(flags: number): number {
  return syscall('inotify_init1', NR.inotify_init1, flags | O_CLOEXEC);
}

/** Adds (or with IN_MASK_ADD, extends) the watch on `path`; returns its watch descriptor. */
export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  return syscall(`inotify_add_watch(${path})`, NR.inotify_add_watch, fd, Buffer.from(`${path}\0`), mask);
}

export function inotifyRmWatch(fd: number, wd: number): void {
  syscall(`inotify_rm_watch(${wd})`, NR.inotify_rm_watch, fd, wd);
}

/** Bytes that a read of fd would return now (FIONREAD): nothing is consumed. */
export function readableBytes(fd: number): number {
  const n = Buffer.alloc(4);
  syscall('ioctl(FIONREAD)', NR.ioctl, fd, FIONREAD, n);
  return n.readInt32LE(0);
}

/**
 * Opens the inode a file handle names (struct file_handle: type and opaque bytes) on the
 * filesystem of `mountFd`, close-on-exec added; -errno when it cannot (ESTALE: no such inode).
 */
export function openByHandle(mountFd: number, type: number, handle: Buffer, flags: number): number {
  const fh = Buffer.alloc(8 + handle.length);
  fh.writeUInt32LE(handle.length, 0);
  fh.writeInt32LE(type, 4);
  handle.copy(fh, 8);
  return trySyscall(NR.open_by_handle_at, mountFd, fh, flags | O_CLOEXEC);
}

/** The file handle of the inode fd is open on (an O_PATH descriptor will do). */
export function fileHandle(fd: number): { type: number; bytes: Buffer } {
  const fh = Buffer.alloc(8 + MAX_HANDLE_SZ);
  fh.writeUInt32LE(MAX_HANDLE_SZ, 0);
  const mountId = Buffer.alloc(4);
  syscall('name_to_handle_at', NR.name_to_handle_at, fd, Buffer.from('\0'), fh, mountId, AT_EMPTY_PATH);
  return { type: fh.readInt32LE(4), bytes: fh.subarray(8, 8 + fh.readUInt32LE(0)) };
}
