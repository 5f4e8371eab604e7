// Freezing a process tree: every thread of every process seized and held in a ptrace stop,
// until thawed.
//
// method 'ptrace': PTRACE_SEIZE + PTRACE_INTERRUPT each thread, process by process down the
// tree, and again until a pass finds no new thread or child (a clone or fork racing the freeze
// is caught by the next pass: a frozen parent forks no more). method 'cgroup': the root's cgroup
// is frozen first (v2 cgroup.freeze or the v1 freezer), so that nothing runs while the tree is
// seized, then thawed under ptrace.
import fs from 'node:fs';
import { freezerOf, isFrozen } from '../sys/cgroup.js';
import { listChildren, listThreads, readStat } from '../sys/proc.js';
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

/** A frozen tree: its live processes in the order found (parents first) and its zombies. */
export class FrozenTree {
  /** Threads of each live process, by PID. */
  readonly processes = new Map<number, number[]>();
  readonly zombies: number[] = [];
  private thawed = false;
  /** Trees frozen by a freeze step and held for a later step of the same run. */
  private static readonly held = new Map<number, FrozenTree>();

  private constructor(readonly root: number, readonly method: FreezeMethod) {}

  /** Keeps this frozen tree for a later step (a dump) to take. */
  hold(): void {
    FrozenTree.held.set(this.root, this);
  }

  /** The tree a freeze step holds for root, taken out of the holding (the taker thaws it). */
  static take(root: number): FrozenTree | undefined {
    const f = FrozenTree.held.get(root);
    FrozenTree.held.delete(root);
    return f;
  }

  get threadCount(): number {
    return [...this.processes.values()].reduce((n, t) => n + t.length, 0);
  }

  static freeze(root: number, method: FreezeMethod = 'ptrace'): FrozenTree {
    const tree = new FrozenTree(root, method);
    try {
      if (!fs.existsSync(`/proc/${root}`)) throw new FreezeError(`no process ${root}`);
      if (root === process.pid) throw new FreezeError('ckpt cannot freeze itself');
      if (readStat(root).state === 'Z') throw new FreezeError(`process ${root} is a zombie`);
      if (method === 'cgroup') tree.freezeUnderCgroup();
      else tree.seizeTree(true);
    } catch (e) {
      tree.thaw();
      if (e instanceof FreezeError) throw e;
      throw new FreezeError(`cannot freeze ${root}: ${(e as Error).message}`, { cause: e });
    }
    return tree;
  }

  /** Seizes every thread of every process of the tree until a pass finds nothing new. */
  private seizeTree(wait: boolean): void {
    for (let fresh = true; fresh;) {
      fresh = false;
      const queue = [this.root];
      while (queue.length > 0) {
        const pid = queue.shift()!;
        if (this.zombies.includes(pid)) continue;
        let state: string;
        try {
          state = readStat(pid).state;
        } catch {
          continue; // gone (reaped) meanwhile
        }
        if (state === 'Z') {
          this.zombies.push(pid);
          fresh = true;
          continue;
        }
        const threads = this.processes.get(pid) ?? [];
        if (!this.processes.has(pid)) this.processes.set(pid, threads);
        for (const tid of listThreads(pid).filter((t) => !threads.includes(t))) {
          if (this.seizeThread(pid, tid, wait)) {
            threads.push(tid);
            fresh = true;
          }
        }
        queue.push(...listChildren(pid));
      }
    }
  }

  private seizeThread(pid: number, tid: number, wait: boolean): boolean {
    try {
      pt.seize(tid, SEIZE_OPTIONS);
    } catch (e) {
      // A thread that exited between listing and seizing is simply gone.
      if (!fs.existsSync(`/proc/${pid}/task/${tid}`)) return false;
      throw e;
    }
    pt.interrupt(tid);
    if (wait) this.waitStopped(pid, tid);
    return true;
  }

  private waitStopped(pid: number, tid: number): void {
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
      throw new FreezeError(`thread ${tid} of ${pid} ended while being frozen (${describe(st)})`);
    }
  }

  private freezeUnderCgroup(): void {
    let fr;
    try {
      fr = freezerOf(this.root);
    } catch (e) {
      throw new FreezeError((e as Error).message);
    }
    fs.writeFileSync(fr.file, fr.freeze);
    try {
      const deadline = Date.now() + 5000;
      while (!isFrozen(fr)) {
        if (Date.now() > deadline) throw new FreezeError(`cgroup of ${this.root} did not freeze within 5 s`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      }
      // Nothing runs now: no thread or child can appear. The interrupts take effect on thaw.
      this.seizeTree(false);
    } finally {
      fs.writeFileSync(fr.file, fr.thaw);
    }
    for (const [pid, threads] of this.processes) for (const tid of threads) this.waitStopped(pid, tid);
  }

  /** Lets every thread go on as before. Safe to call twice and after processes died. */
  thaw(): void {
    if (this.thawed) return;
    this.thawed = true;
    FrozenTree.held.delete(this.root);
    for (const threads of this.processes.values()) for (const tid of threads) pt.tryDetach(tid);
  }

  /** Ends the frozen tree (after a dump without leave-running). */
  kill(): void {
    this.thawed = true;
    FrozenTree.held.delete(this.root);
    // Processes that are children of ckpt itself (a pipeline's spawn step) are left for their
    // parent's bookkeeping to reap: reaping them here would leave libuv waiting on a PID that
    // a restore may give to another process.
    const ours = new Set([...this.processes.keys()].filter((pid) => {
      try { return readStat(pid).ppid === process.pid; } catch { return false; }
    }));
    for (const pid of this.processes.keys()) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    // Each traced thread reports its death to us first; until we take those reports a leader
    // cannot be reaped by its parent (and is itself reported last).
    for (const [pid, threads] of this.processes) {
      for (const tid of threads.filter((t) => t !== pid)) takeDeathReport(tid);
      if (ours.has(pid)) pt.waitEndedNoReap(pid);
      else takeDeathReport(pid);
    }
  }
}

function takeDeathReport(tid: number): void {
  for (;;) {
    const st = pt.tryWait(tid);
    if (typeof st === 'number' || st.exited || st.signaled) return;
  }
}
