// timerfd: clock, interval, the time left to the next expiry, and expirations not yet read.
import { timerfdCreate, timerfdSetTicks, timerfdSettime } from '../../sys/files.js';
import type { FileKind, FileRecordBase } from './types.js';

const O_NONBLOCK = 0o4000;

export interface TimerfdFileRecord extends FileRecordBase {
  kind: 'timerfd';
  clock: number;
  flags: number;
  /** [sec, nsec] */
  interval: [number, number];
  /** Time left to the next expiry, [sec, nsec]; [0, 0] when disarmed. */
  value: [number, number];
  ticks: string;
}

function pair(text: string | undefined, what: string): [number, number] {
  const m = /^\((\d+),\s*(\d+)\)$/.exec(text?.trim() ?? '');
  if (!m) throw new Error(`timerfd ${what}: cannot read "${text}"`);
  return [Number(m[1]), Number(m[2])];
}

export const timerfds: FileKind<TimerfdFileRecord> = {
  kind: 'timerfd',

  matches: ({ link }) => link === 'anon_inode:[timerfd]',

  async collect({ fdinfo }) {
    return {
      clock: Number(fdinfo.extra.clockid),
      flags: fdinfo.flags & O_NONBLOCK,
      interval: pair(fdinfo.extra.it_interval, 'it_interval'),
      value: pair(fdinfo.extra.it_value, 'it_value'),
      ticks: BigInt(fdinfo.extra.ticks?.trim() ?? '0').toString(),
    };
  },

  async open(_ctx, rec) {
    const fd = timerfdCreate(rec.clock, rec.flags & O_NONBLOCK);
    const armed = rec.value[0] !== 0 || rec.value[1] !== 0;
    const periodic = rec.interval[0] !== 0 || rec.interval[1] !== 0;
    // Armed with the time that was left: it fires when it would have, counted from the restore.
    // A periodic timer that expired and was not read yet shows 0 left (the kernel re-arms it on
    // the read): it is armed for one interval instead, its unread expirations set below.
    if (armed || periodic) timerfdSettime(fd, rec.interval, armed ? rec.value : rec.interval);
    if (BigInt(rec.ticks) > 0n) timerfdSetTicks(fd, BigInt(rec.ticks));
    return fd;
  },
};
