// x86_64: register layout of struct user_regs_struct, syscall numbers and code bytes.
import type { Arch, Regs, SyscallName } from '../types.js';

const regNames = [
  'r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx',
  'rsi', 'rdi', 'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds', 'es',
  'fs', 'gs',
] as const;

const nr: Record<SyscallName, number> = {
  read: 0, write: 1, close: 3, lseek: 8, mmap: 9, mprotect: 10, munmap: 11, brk: 12,
  rt_sigaction: 13, rt_sigprocmask: 14, ioctl: 16, pread64: 17, pwrite64: 18, mremap: 25,
  madvise: 28, dup: 32, nanosleep: 35, getitimer: 36, setitimer: 38, getpid: 39, socket: 41,
  sendmsg: 46, recvmsg: 47, exit: 60, wait4: 61, kill: 62, fcntl: 72, ftruncate: 77, fchdir: 81,
  umask: 95, getrlimit: 97, ptrace: 101, setpgid: 109, setsid: 112, setgroups: 116,
  setresuid: 117, setresgid: 119, getpgid: 121, setfsuid: 122, setfsgid: 123, getsid: 124,
  capget: 125, capset: 126, rt_sigpending: 127, rt_sigqueueinfo: 129, sigaltstack: 131,
  personality: 135, prctl: 157, arch_prctl: 158, setrlimit: 160, chroot: 161, gettid: 186,
  futex: 202, set_tid_address: 218, restart_syscall: 219, timer_create: 222, timer_settime: 223,
  timer_gettime: 224, timer_getoverrun: 225, timer_delete: 226, clock_gettime: 228,
  clock_nanosleep: 230, exit_group: 231, epoll_ctl: 233, tgkill: 234, openat: 257, set_robust_list: 273,
  get_robust_list: 274, rt_tgsigqueueinfo: 297, dup3: 292, prlimit64: 302,
  process_vm_readv: 310, process_vm_writev: 311, memfd_create: 319, userfaultfd: 323,
  rseq: 334, pidfd_open: 434, clone3: 435, close_range: 436, pidfd_getfd: 438,
};

// Kernel-internal restart codes a frozen thread's rax can hold (include/linux/errno.h).
const ERESTARTSYS = -512n;
const ERESTARTNOINTR = -513n;
const ERESTARTNOHAND = -514n;
const ERESTART_RESTARTBLOCK = -516n;
const EINTR = -4n;
const U64 = (1n << 64n) - 1n;
const signed = (v: bigint) => BigInt.asIntN(64, v);

/** How a thread frozen inside a syscall would have it restarted by the kernel, if at all. */
function interrupted(regs: Regs): 'restart' | 'restart-block' | null {
  if (signed(regs.orig_rax) < 0) return null;
  const rax = signed(regs.rax);
  if (rax === ERESTARTSYS || rax === ERESTARTNOINTR || rax === ERESTARTNOHAND) return 'restart';
  if (rax === ERESTART_RESTARTBLOCK) return 'restart-block';
  return null;
}

export const x86_64: Arch = {
  name: 'x86_64',
  pageSize: 4096,
  regNames,
  nr,
  pc: 'rip',
  sp: 'rsp',
  result: 'rax',
  syscallNr: 'orig_rax',
  args: ['rdi', 'rsi', 'rdx', 'r10', 'r8', 'r9'],
  syscallInsn: Buffer.from([0x0f, 0x05]),
  trampolineCode: Buffer.from([0x0f, 0x05, 0xcc]),
  extendedStateNote: 0x202, // NT_X86_XSTATE
  tlsRegs: ['fs_base', 'gs_base'],

  restartRegs(frozen: Regs): Regs {
    const regs = { ...frozen };
    const how = interrupted(regs);
    if (how === 'restart') {
      // Re-execute the syscall instruction with the original number.
      regs.rip -= 2n;
      regs.rax = regs.orig_rax;
    } else if (how === 'restart-block') {
      // The kernel's restart block did not survive; a fresh process gets -EINTR, as after a
      // signal handler (callers such as nanosleep loops see the remaining time).
      regs.rax = EINTR & U64;
    }
    regs.orig_rax = U64; // -1: no syscall to restart any more
    return regs;
  },

  resumeRegs(frozen: Regs): Regs {
    const regs = { ...frozen };
    const how = interrupted(regs);
    if (how) {
      regs.rip -= 2n;
      regs.rax = how === 'restart' ? regs.orig_rax : BigInt(nr.restart_syscall);
    }
    return regs;
  },

  regsFromBuffer(buf: Buffer): Regs {
    const regs: Regs = {};
    regNames.forEach((name, i) => { regs[name] = buf.readBigUInt64LE(i * 8); });
    return regs;
  },

  regsToBuffer(regs: Regs): Buffer {
    const buf = Buffer.alloc(regNames.length * 8);
    regNames.forEach((name, i) => { buf.writeBigUInt64LE(regs[name] & U64, i * 8); });
    return buf;
  },
};
