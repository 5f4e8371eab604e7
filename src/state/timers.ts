// Interval timers (setitimer) and POSIX timers (timer_create), with their remaining time.
import { readTimers } from '../sys/proc.js';
import type { RemoteScratch, RemoteThread } from '../sys/remote.js';
import { hex, parseHex } from '../image/hex.js';

const ITIMERS = ['real', 'virtual', 'prof'] as const;
const PR_TIMER_CREATE_RESTORE_IDS = 77;
const SIGEV = { signal: 0, none: 1, thread: 2 } as const;
const SIGEV_THREAD_ID = 4;

/** Seconds and the sub-second part (µs for itimers, ns for POSIX timers) as [sec, frac]. */
type Time = [number, number];

export interface ItimerRecord { which: (typeof ITIMERS)[number]; interval: Time; value: Time }

export interface PosixTimerRecord {
  id: number;
  clock: number;
  notify: keyof typeof SIGEV;
  signal: number;
  sigev_value: string;
  /** SIGEV_THREAD_ID: the signal goes to this thread rather than the process. */
  notify_tid?: number;
  interval: Time;
  value: Time;
}

export interface TimersRecord { itimers: ItimerRecord[]; posix: PosixTimerRecord[] }

function readTimes(buf: Buffer): { interval: Time; value: Time } {
  const n = (o: number) => Number(buf.readBigInt64LE(o));
  return { interval: [n(0), n(8)], value: [n(16), n(24)] };
}

function writeTimes(t: { interval: Time; value: Time }): Buffer {
  const b = Buffer.alloc(32);
  [t.interval[0], t.interval[1], t.value[0], t.value[1]].forEach((v, i) => b.writeBigInt64LE(BigInt(v), i * 8));
  return b;
}

const armed = (t: { value: Time }) => t.value[0] !== 0 || t.value[1] !== 0;

export function collectTimers(pid: number, leader: RemoteThread, scratch: RemoteScratch): TimersRecord {
  const itimers: ItimerRecord[] = [];
  ITIMERS.forEach((which, i) => {
    leader.call('getitimer', i, scratch.addr);
    const t = readTimes(scratch.get(0, 32));
    if (armed(t) || t.interval[0] !== 0 || t.interval[1] !== 0) itimers.push({ which, ...t });
  });
  const posix = readTimers(pid).map((timer): PosixTimerRecord => {
    leader.call('timer_gettime', timer.id, scratch.addr);
    const notify = timer.notify as PosixTimerRecord['notify'];
    if (!(notify in SIGEV)) throw new Error(`POSIX timer ${timer.id} of ${pid}: unknown notify "${timer.notify}"`);
    return {
      id: timer.id,
      clock: timer.clockId,
      notify,
      signal: timer.signal,
      sigev_value: hex(timer.sigevValue),
      ...(timer.toThread ? { notify_tid: timer.notifyTid ?? timer.notifyPid } : {}),
      ...readTimes(scratch.get(0, 32)),
    };
  });
  return { itimers, posix };
}

/**
 * A periodic timer that expired with its signal still pending reads as value 0: the kernel
 * re-arms it only when that signal is taken. Setting value 0 would disarm it; it is armed for
 * one interval instead (the pending signal is queued again as well).
 */
function rearmed<T extends { interval: Time; value: Time }>(t: T): T {
  const periodic = t.interval[0] !== 0 || t.interval[1] !== 0;
  return armed(t) || !periodic ? t : { ...t, value: t.interval };
}

export function restoreTimers(leader: RemoteThread, scratch: RemoteScratch, rec: TimersRecord): void {
  for (const t of rec.itimers) {
    leader.call('setitimer', ITIMERS.indexOf(t.which), scratch.put(writeTimes(rearmed(t))), 0);
  }
  if (rec.posix.length === 0) return;
  // With this prctl, timer_create takes the id to use from *timer_id (Linux >= 6.15).
  leader.call('prctl', PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0);
  try {
    for (const t of rec.posix) {
      const ev = Buffer.alloc(64);
      ev.writeBigUInt64LE(parseHex(t.sigev_value), 0);
      ev.writeInt32LE(t.signal, 8);
      ev.writeInt32LE(SIGEV[t.notify] | (t.notify_tid !== undefined ? SIGEV_THREAD_ID : 0), 12);
      ev.writeInt32LE(t.notify_tid ?? 0, 16);
      const id = Buffer.alloc(4);
      id.writeInt32LE(t.id, 0);
      leader.call('timer_create', t.clock, scratch.put(ev, 0), scratch.put(id, 64));
      const next = rearmed(t);
      if (armed(next)) leader.call('timer_settime', t.id, 0, scratch.put(writeTimes(next), 128), 0);
    }
  } finally {
    leader.call('prctl', PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0);
  }
}
