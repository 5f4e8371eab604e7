// clone3 with set_tid, run inside a stopped process: how ckpt creates processes and threads
// with the IDs they had.
import type { RemoteScratch, RemoteThread } from './remote.js';

export const CLONE = {
  VM: 0x100, FS: 0x200, FILES: 0x400, SIGHAND: 0x800, PARENT: 0x8000, THREAD: 0x10000, SYSVSEM: 0x40000,
} as const;

/** struct clone_args: 88 bytes; exit_signal at 32, set_tid at 64, set_tid_size at 72. */
const CLONE_ARGS_SIZE = 88;

/**
 * Runs clone3(flags, exit_signal, set_tid = [id]) in `thread`; returns the raw result (the new
 * ID, or -errno). The struct and the ID go through `scratch`.
 */
export function remoteClone3(thread: RemoteThread, scratch: RemoteScratch, flags: number, exitSignal: number, id: number): bigint {
  const setTid = Buffer.alloc(8);
  setTid.writeInt32LE(id, 0);
  const args = Buffer.alloc(CLONE_ARGS_SIZE);
  args.writeBigUInt64LE(BigInt(flags), 0);
  args.writeBigUInt64LE(BigInt(exitSignal), 32);
  args.writeBigUInt64LE(scratch.put(setTid, CLONE_ARGS_SIZE), 64);
  args.writeBigUInt64LE(1n, 72);
  return thread.tryCall('clone3', scratch.put(args, 0), CLONE_ARGS_SIZE);
}
