// Before/after views of a process for comparing it across a dump and restore.
import { listFds, readFdLink, readFdinfo, readMaps, type MapEntry } from '../../src/sys/proc.js';

export interface ProcSnapshot {
  /** /proc/PID/maps normalized, one mapping a line. */
  maps: string;
  /** One line per fd: "fd -> link flags=0oNNN pos=N", ascending by fd. */
  fds: string[];
}

// A restore may split or join mappings that the kernel keeps apart only for history's sake
// (different anon_vma), so neighbours that could be one mapping are shown as one.
function continues(a: MapEntry, b: MapEntry): boolean {
  return (
    a.end === b.start && a.perms === b.perms && a.path === b.path && a.deleted === b.deleted && a.dev === b.dev &&
    a.inode === b.inode && (a.path === '' || a.offset + (a.end - a.start) === b.offset)
  );
}

function mapLine(m: MapEntry): string {
  const range = `${m.start.toString(16)}-${m.end.toString(16)} ${m.perms} ${m.offset.toString(16)}`;
  if (m.path === '') return range;
  // Unlinked files and shared anonymous memory come back as new inodes.
  if (m.deleted) return `${range} ${m.path} (deleted)`;
  return `${range} ${m.path} ${m.dev} ${m.inode}`;
}

export function procSnapshot(pid: number): ProcSnapshot {
  const merged: MapEntry[] = [];
  for (const m of readMaps(pid)) {
    const last = merged[merged.length - 1];
    if (last !== undefined && continues(last, m)) merged[merged.length - 1] = { ...last, end: m.end };
    else merged.push(m);
  }
  const fds = listFds(pid).map((fd) => {
    const info = readFdinfo(pid, fd);
    // Pipes, sockets and anonymous inodes get new inode numbers when recreated.
    const link = readFdLink(pid, fd).replace(/^(\w+):\[\d+\]$/, '$1:[*]');
    return `${fd} -> ${link} flags=0o${info.flags.toString(8)} pos=${info.pos}`;
  });
  return { maps: merged.map(mapLine).join('\n') + '\n', fds };
}
