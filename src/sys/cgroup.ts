// Where the cgroup freezers are: the v2 hierarchy (cgroup.freeze) and the v1 freezer controller
// can be mounted anywhere (hybrid systems have v2 at /sys/fs/cgroup/unified, say).
import fs from 'node:fs';
import path from 'node:path';

export interface Freezer {
  /** File to write freeze/thaw to. */
  file: string;
  freeze: string;
  thaw: string;
  /** v2: cgroup.events, whose "frozen 1" line says the freeze is complete. */
  events?: string;
}

export function cgroupMounts(): { v1Freezer?: string; v2?: string } {
  const out: { v1Freezer?: string; v2?: string } = {};
  for (const line of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, mountpoint, type, options] = line.split(' ');
    if (type === 'cgroup2') out.v2 ??= mountpoint;
    if (type === 'cgroup' && options?.split(',').includes('freezer')) out.v1Freezer ??= mountpoint;
  }
  return out;
}

/** The freezer of pid's cgroup, v1 freezer preferred where the process sits in a v1 freezer group. */
export function freezerOf(pid: number): Freezer {
  const lines = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  const mounts = cgroupMounts();
  const v1 = lines.find((l) => l.split(':')[1]?.split(',').includes('freezer'))?.split(':')[2];
  if (mounts.v1Freezer && v1 && v1 !== '/') {
    return { file: path.join(mounts.v1Freezer, v1, 'freezer.state'), freeze: 'FROZEN', thaw: 'THAWED' };
  }
  const v2 = lines.find((l) => l.startsWith('0::'))?.slice(3);
  if (mounts.v2 && v2 && v2 !== '/') {
    const dir = path.join(mounts.v2, v2);
    return { file: path.join(dir, 'cgroup.freeze'), freeze: '1', thaw: '0', events: path.join(dir, 'cgroup.events') };
  }
  throw new Error(`process ${pid} is in no freezable cgroup (root cgroups cannot be frozen); use method: ptrace`);
}

/** Whether the freeze written to fr has taken effect. */
export function isFrozen(fr: Freezer): boolean {
  return fr.events
    ? /^frozen 1$/m.test(fs.readFileSync(fr.events, 'utf8'))
    : fs.readFileSync(fr.file, 'utf8').trim() === 'FROZEN';
}
