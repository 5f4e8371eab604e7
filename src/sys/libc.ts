// The one place that loads libc through koffi. Everything else in src/sys calls these wrappers;
// nothing outside src/sys imports koffi.
import koffi from 'koffi';
import { constants as osConstants } from 'node:os';

const libc = koffi.load('libc.so.6');

type Arg = number | bigint | Buffer;

const rawSyscall = libc.func(
  'long syscall(long, intptr_t, intptr_t, intptr_t, intptr_t, intptr_t, intptr_t)',
);

const errnoNames = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, value]) => [value, name]),
);

/** A failed system call, named by what was called and the errno it returned. */
export class SysError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly call: string;
  constructor(call: string, errno: number, detail?: string) {
    const code = errnoNames.get(errno) ?? `errno ${errno}`;
    super(`${call}${detail ? ` (${detail})` : ''}: ${code}`);
    this.name = 'SysError';
    this.errno = errno;
    this.code = code;
    this.call = call;
  }
}

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

/** Address of a Buffer's bytes, for passing to a syscall that takes a pointer. */
export function addressOf(buf: Buffer): bigint {
  return koffi.address(buf) as bigint;
}

function toArg(a: Arg | undefined): number | bigint {
  if (a === undefined) return 0;
  if (Buffer.isBuffer(a)) return addressOf(a);
  return a;
}

/**
 * Calls syscall `nr` in this process. Buffers pass as pointers to their bytes.
 * Throws SysError naming `name` on failure; returns the (non-negative) result.
 */
export function syscall(name: string, nr: number, ...args: Arg[]): number {
  const r = rawSyscall(nr, toArg(args[0]), toArg(args[1]), toArg(args[2]), toArg(args[3]),
    toArg(args[4]), toArg(args[5])) as number;
  if (r === -1) throw new SysError(name, koffi.errno());
  return r;
}

/** Like syscall, but returns -errno instead of throwing (for calls whose failure is an answer). */
export function trySyscall(nr: number, ...args: Arg[]): number {
  const r = rawSyscall(nr, toArg(args[0]), toArg(args[1]), toArg(args[2]), toArg(args[3]),
    toArg(args[4]), toArg(args[5])) as number;
  return r === -1 ? -koffi.errno() : r;
}
