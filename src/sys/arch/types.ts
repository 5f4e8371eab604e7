// What the rest of ckpt needs to know about a CPU architecture. x86_64 implements it today;
// aarch64 and riscv64 provide the same shape.

/** Registers by name, as 64-bit unsigned values. */
export type Regs = Record<string, bigint>;

export type SyscallName =
  | 'read' | 'write' | 'close' | 'lseek' | 'mmap' | 'mprotect' | 'munmap' | 'brk' | 'rt_sigaction'
  | 'rt_sigprocmask' | 'ioctl' | 'mremap' | 'madvise' | 'dup' | 'nanosleep' | 'getitimer'
  | 'setitimer' | 'getpid' | 'socket' | 'sendmsg' | 'recvmsg' | 'exit' | 'kill' | 'fcntl'
  | 'fchdir' | 'umask' | 'setpgid' | 'setsid' | 'getpgid' | 'getsid' | 'setgroups' | 'setresuid'
  | 'setresgid' | 'setfsuid' | 'setfsgid' | 'capget' | 'capset' | 'rt_sigpending' | 'rt_sigqueueinfo'
  | 'sigaltstack' | 'personality' | 'prctl' | 'arch_prctl' | 'chroot' | 'gettid' | 'futex'
  | 'set_tid_address' | 'timer_create' | 'timer_settime' | 'timer_gettime' | 'timer_getoverrun'
  | 'timer_delete' | 'clock_gettime' | 'exit_group' | 'epoll_ctl' | 'openat' | 'set_robust_list'
  | 'get_robust_list' | 'rt_tgsigqueueinfo' | 'dup3' | 'prlimit64' | 'process_vm_readv'
  | 'process_vm_writev' | 'memfd_create' | 'userfaultfd' | 'rseq' | 'pidfd_open' | 'clone3'
  | 'pidfd_getfd' | 'close_range' | 'ptrace' | 'wait4' | 'tgkill' | 'getrlimit' | 'setrlimit'
  | 'restart_syscall' | 'clock_nanosleep' | 'ftruncate' | 'pread64' | 'pwrite64';

export interface Arch {
  readonly name: string;
  readonly pageSize: number;
  /** Register names in the kernel's user_regs_struct order (PTRACE_GETREGS / NT_PRSTATUS). */
  readonly regNames: readonly string[];
  readonly nr: Readonly<Record<SyscallName, number>>;
  readonly pc: string;
  readonly sp: string;
  /** Register holding a syscall's number on entry and its result on return. */
  readonly result: string;
  /** Register the kernel keeps the number of the interrupted syscall in (-1: none). */
  readonly syscallNr: string;
  readonly args: readonly string[];
  /** Bytes of the "make a syscall" instruction, and of "syscall; breakpoint". */
  readonly syscallInsn: Buffer;
  readonly trampolineCode: Buffer;
  /** NT_* note type of the extended FPU/vector state for PTRACE_GETREGSET. */
  readonly extendedStateNote: number;
  /** Thread-pointer registers that must be restored (fs_base/gs_base on x86_64). */
  readonly tlsRegs: readonly string[];
  /**
   * Registers a thread must get when it is let go after restore, given the registers it had when
   * it was frozen, so that a syscall it was inside restarts the way the kernel would have
   * restarted it.
   */
  restartRegs(frozen: Regs): Regs;
  /**
   * Registers for a live thread that was frozen with `frozen` and is let go from a syscall-exit
   * stop (after remote syscalls), where the kernel no longer applies restart handling: done here
   * as the kernel would have done it (the thread's restart block is still there).
   */
  resumeRegs(frozen: Regs): Regs;
  regsFromBuffer(buf: Buffer): Regs;
  regsToBuffer(regs: Regs): Buffer;
}
