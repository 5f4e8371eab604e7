// Freezing a process: every thread seized and held in a ptrace stop, until thawed.
//
// method 'ptrace': PTRACE_SEIZE + PTRACE_INTERRUPT each thread, repeated until no new thread
// appears. method 'cgroup': the process's cgroup is frozen first (v2 cgroup.freeze or the v1
// freezer), so that nothing runs while threads are seized, then thawed under ptrace.
import fs from 'node:fs';
import { freezerOf, isFrozen, type Freezer } from '../sys/cgroup.js';
import { listThreads, readStat } from '../sys/proc.js';
import * as pt from '../sys/ptrace.js';
import { describe } from '../sys/remote.js';

export type FreezeMethod = 'ptrace' | 'cgroup';

export const SEIZE_OPTIONS = pt.PTRACE_O.TRACESYSGOOD;

export class FreezeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FreezeError';
  }
}

/** A frozen process: its threads, seized and stopped, in the order they were found. */
export class FrozenProcess {
  readonly threads: number[] = [];
  private thawed = false;
  /** Processes frozen by a freeze step and held for a later step of the same run. */
  private static readonly held = new Map<number, FrozenProcess>();

  /** Keeps this frozen process for a later step (a dump) to take. */
  hold(): void {
    FrozenProcess.held.set(this.pid, this);
  }

  /** The process a freeze step holds for pid, taken out of the holding (the taker thaws it). */
  static take(pid: number): FrozenProcess | undefined {
    const f = FrozenProcess.held.get(pid);
    FrozenProcess.held.delete(pid);
    return f;
  }

  private constructor(readonly pid: number, readonly method: FreezeMethod) {}

  static freeze(pid: number, method: FreezeMethod = 'ptrace'): FrozenProcess {
    const frozen = new FrozenProcess(pid, method);
    try {
      if (!fs.existsSync(`/proc/${pid}`)) throw new FreezeError(`no process ${pid}`);
      if (pid === process.pid) throw new FreezeError('ckpt cannot freeze itself');
      const st = readStat(pid);
      if (st.state === 'Z') throw new FreezeError(`process ${pid} is a zombie`);
      if (method === 'cgroup') frozen.freezeCgroup();
      else frozen.seizeAll();
    } catch (e) {
      frozen.thaw();
      if (e instanceof FreezeError) throw e;
      throw new FreezeError(`cannot freeze ${pid}: ${(e as Error).message}`, { cause: e });
    }
    return frozen;
  }

  /** Seizes threads until a pass finds no new one (threads may be created while we seize). */
  private seizeAll(): void {
    for (;;) {
      const fresh = listThreads(this.pid).filter((t) => !this.threads.includes(t));
      if (fresh.length === 0) return;
      for (const tid of fresh) this.seizeThread(tid);
    }
  }

  private seizeThread(tid: number): void {
    try {
      pt.seize(tid, SEIZE_OPTIONS);
    } catch (e) {
      // A thread that exited between listing and seizing is simply gone.
      if (!fs.existsSync(`/proc/${this.pid}/task/${tid}`)) return;
      throw e;
    }
    this.threads.push(tid);
    pt.interrupt(tid);
    this.waitStopped(tid);
  }

  private waitStopped(tid: number): void {
    for (;;) {
      const st = pt.wait(tid)!;
      if (st.stopped && st.event === pt.PTRACE_EVENT.STOP) return;
      if (st.stopped) {
        // A signal arrived before the interrupt: let it be delivered as it would have been,
        // then interrupt again.
        pt.cont(tid, st.stopSignal ?? 0);
        pt.interrupt(tid);
        continue;
      }
      throw new FreezeError(`thread ${tid} of ${this.pid} ended while being frozen (${describe(st)})`);
    }
  }

  private freezeCgroup(): void {
    let fr: Freezer;
    try {
      fr = freezerOf(this.pid);
    } catch (e) {
      throw new FreezeError((e as Error).message);
    }
    fs.writeFileSync(fr.file, fr.freeze);
    try {
      const deadline = Date.now() + 5000;
      while (!isFrozen(fr)) {
        if (Date.now() > deadline) throw new FreezeError(`cgroup of ${this.pid} did not freeze within 5 s`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      }
      // Nothing runs now: no thread can appear while we seize. Interrupts take effect on thaw.
      for (const tid of listThreads(this.pid)) {
        pt.seize(tid, SEIZE_OPTIONS);
        this.threads.push(tid);
        pt.interrupt(tid);
      }
    } finally {
      fs.writeFileSync(fr.file, fr.thaw);
    }
    for (const tid of this.threads) this.waitStopped(tid);
  }

  /** Lets every thread go on as before. Safe to call twice and after the process died. */
  thaw(): void {
    if (this.thawed) return;
    this.thawed = true;
    FrozenProcess.held.delete(this.pid);
    for (const tid of this.threads) pt.tryDetach(tid);
  }

  /** Ends the frozen process (after a dump without leave-running). */
  kill(): void {
    this.thawed = true;
    FrozenProcess.held.delete(this.pid);
    try { process.kill(this.pid, 'SIGKILL'); } catch { /* already gone */ }
    // Each traced thread reports its death to us first; until we take those reports the
    // leader cannot be reaped by its parent (and is itself reported last).
    for (const tid of [...this.threads.filter((t) => t !== this.pid), this.pid]) {
      for (;;) {
        const st = pt.tryWait(tid);
        if (typeof st === 'number' || st.exited || st.signaled) break;
      }
    }
  }
}
