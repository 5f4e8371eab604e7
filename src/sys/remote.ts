// Remote syscalls: make a ptrace-stopped thread execute one system call chosen by ckpt.
//
// The thread's registers are pointed at a `syscall` instruction already present in its address
// space (the vDSO has several; at restore the trampoline page has one), and it is resumed with
// PTRACE_SYSCALL twice: to the syscall-enter stop and to the syscall-exit stop. No code of the
// target is modified and no SIGTRAP is raised, so its signal handlers and mask stay untouched.
// While ckpt drives it, every signal is blocked (PTRACE_SETSIGMASK) so that none is delivered
// in between; the caller puts the mask back.
import { hostArch, type Regs, type SyscallName } from './arch/index.js';
import { errnoName } from './libc.js';
import { ProcMem } from './memory.js';
import * as pt from './ptrace.js';

const arch = hostArch();
const ALL_SIGNALS = (1n << 64n) - 1n;
const MINUS_ONE = (1n << 64n) - 1n;

export class RemoteSyscallError extends Error {
  constructor(readonly call: string, readonly tid: number, readonly errno: number) {
    super(`remote ${call} in ${tid}: ${errnoName(errno)}`);
    this.name = 'RemoteSyscallError';
  }
}

/** A fork/clone event seen while a remote syscall ran (e.g. the new child of a remote clone3). */
export interface RemoteEvent { event: number; message: bigint }

export class RemoteThread {
  /** Registers the thread had when it was taken over. */
  readonly savedRegs: Regs;
  readonly savedMask: bigint;
  readonly events: RemoteEvent[] = [];
  private regs: Regs;
  /** The syscall start() began and finish() has not collected yet. */
  private running: SyscallName | undefined;

  /**
   * @param tid a thread in a ptrace stop, seized with PTRACE_O_TRACESYSGOOD
   * @param gadget address of a `syscall` instruction in its address space
   * @param restoreBetweenCalls put the thread back as it was after each syscall: a thread of a
   *   process being dumped, which must go on as before even if ckpt is killed meanwhile (the
   *   kernel then lets it run from whatever registers it has)
   */
  constructor(readonly tid: number, public gadget: bigint, private readonly restoreBetweenCalls = false) {
    this.savedRegs = pt.getRegs(tid);
    this.savedMask = pt.getSigmask(tid);
    this.regs = { ...this.savedRegs };
    if (!restoreBetweenCalls) pt.setSigmask(tid, ALL_SIGNALS);
  }

  /** Runs syscall `name` with args; returns the raw result (negative: -errno). */
  tryCall(name: SyscallName, ...args: (bigint | number)[]): bigint {
    this.start(name, ...args);
    return this.tryFinish();
  }

  /**
   * Starts syscall `name` and returns while the thread runs it, so that ckpt can work
   * meanwhile (e.g. copy memory while the process populates the next range); finish() waits.
   */
  start(name: SyscallName, ...args: (bigint | number)[]): void {
    if (this.running) throw new Error(`remote ${name} in ${this.tid}: ${this.running} is still running`);
    const regs: Regs = { ...this.regs };
    regs[arch.result] = BigInt(arch.nr[name]);
    regs[arch.syscallNr] = MINUS_ONE;
    regs[arch.pc] = this.gadget;
    arch.args.forEach((r, i) => { regs[r] = BigInt.asUintN(64, BigInt(args[i] ?? 0)); });
    pt.setRegs(this.tid, regs);
    // Signals wait while the syscall runs: a handler would take the thread away from it.
    if (this.restoreBetweenCalls) pt.setSigmask(this.tid, ALL_SIGNALS);
    this.running = name;
    pt.resumeToSyscall(this.tid);
    this.awaitSyscallStop('enter');
    pt.resumeToSyscall(this.tid);
  }

  /** Waits for the syscall start() began; returns its raw result (negative: -errno). */
  tryFinish(): bigint {
    this.awaitSyscallStop('exit');
    this.running = undefined;
    this.regs = pt.getRegs(this.tid);
    if (this.restoreBetweenCalls) this.restore();
    return BigInt.asIntN(64, this.regs[arch.result]);
  }

  /** Like tryFinish(), but throws RemoteSyscallError on failure. */
  finish(): bigint {
    const name = this.running ?? 'syscall';
    const r = this.tryFinish();
    if (r < 0n && r > -4096n) throw new RemoteSyscallError(name, this.tid, Number(-r));
    return r;
  }

  /** Runs syscall `name`; throws RemoteSyscallError on failure. */
  call(name: SyscallName, ...args: (bigint | number)[]): bigint {
    const r = this.tryCall(name, ...args);
    if (r < 0n && r > -4096n) throw new RemoteSyscallError(name, this.tid, Number(-r));
    return r;
  }

  private awaitSyscallStop(phase: string): void {
    for (;;) {
      const st = pt.wait(this.tid)!;
      if (st.syscallStop) return;
      if (st.stopped && st.event !== 0 && st.event !== pt.PTRACE_EVENT.STOP) {
        // fork/clone/exec events arrive inside the syscall; the syscall-exit stop follows.
        this.events.push({ event: st.event, message: pt.getEventMsg(this.tid) });
      } else if (!(st.stopped && st.event === pt.PTRACE_EVENT.STOP)) {
        throw new Error(`remote ${this.running} in ${this.tid}: unexpected ${describe(st)} at syscall ${phase}`);
      }
      pt.resumeToSyscall(this.tid);
    }
  }

  /**
   * Puts the thread back as it was: registers (adjusted so an interrupted syscall restarts as
   * the kernel would have restarted it) and signal mask. The thread stays in a ptrace stop.
   */
  restore(): void {
    pt.setRegs(this.tid, arch.resumeRegs(this.savedRegs));
    pt.setSigmask(this.tid, this.savedMask);
  }
}

export function describe(st: pt.WaitStatus): string {
  if (st.exited) return `exit ${st.exitCode}`;
  if (st.signaled) return `death by signal ${st.termSignal}`;
  if (st.syscallStop) return 'syscall stop';
  if (st.event) return `ptrace event ${st.event} stop`;
  return `stop by signal ${st.stopSignal}`;
}

/**
 * A scratch area mapped in a stopped process for the arguments and results of remote syscalls
 * (structures the kernel reads or fills in). Unmapped again when done, so the process's memory
 * map is as it was.
 */
export class RemoteScratch {
  private constructor(readonly thread: RemoteThread, readonly mem: ProcMem, readonly addr: bigint,
    readonly size: number) {}

  static map(thread: RemoteThread, mem: ProcMem, size = 4096): RemoteScratch {
    const PROT_RW = 3;
    const MAP_PRIVATE_ANON = 0x22;
    const addr = thread.call('mmap', 0, size, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
    return new RemoteScratch(thread, mem, BigInt.asUintN(64, addr), size);
  }

  /** An area the process already has (e.g. part of a page ckpt mapped for the restore). */
  static at(thread: RemoteThread, mem: ProcMem, addr: bigint, size: number): RemoteScratch {
    return new RemoteScratch(thread, mem, addr, size);
  }

  /** Copies data into the area at offset; returns its address in the process. */
  put(data: Buffer, offset = 0): bigint {
    if (offset + data.length > this.size) throw new Error('remote scratch area too small');
    this.mem.write(this.addr + BigInt(offset), data);
    return this.addr + BigInt(offset);
  }

  get(offset: number, len: number): Buffer {
    const buf = Buffer.alloc(len);
    this.mem.read(this.addr + BigInt(offset), buf);
    return buf;
  }

  unmap(): void {
    this.thread.call('munmap', this.addr, this.size);
  }
}

/** Address of a `syscall` instruction inside [start, end) of the process (e.g. its vDSO). */
export function findSyscallInsn(mem: ProcMem, start: bigint, end: bigint): bigint | undefined {
  const code = Buffer.alloc(Number(end - start));
  mem.read(start, code);
  const at = code.indexOf(arch.syscallInsn);
  return at < 0 ? undefined : start + BigInt(at);
}
