// Resource limits (getrlimit/setrlimit for every RLIMIT_*).
import { readLimits } from '../sys/proc.js';
import type { RemoteScratch, RemoteThread } from '../sys/remote.js';
import { hex, parseHex } from '../image/hex.js';

export interface RlimitRecord { resource: number; soft: string; hard: string }

export function collectLimits(pid: number): RlimitRecord[] {
  return readLimits(pid).map((l, resource) => ({ resource, soft: hex(l.soft), hard: hex(l.hard) }));
}

/**
 * Sets the saved limits in the restored process. A hard limit above the current one can only be
 * raised with CAP_SYS_RESOURCE; where that is refused the limit stays as it is and a warning says so.
 */
export function restoreLimits(pid: number, leader: RemoteThread, scratch: RemoteScratch, recs: RlimitRecord[],
  warn: (msg: string) => void): void {
  const now = collectLimits(pid);
  for (const rec of recs) {
    const cur = now[rec.resource];
    if (cur && cur.soft === rec.soft && cur.hard === rec.hard) continue;
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(parseHex(rec.soft), 0);
    b.writeBigUInt64LE(parseHex(rec.hard), 8);
    const r = leader.tryCall('prlimit64', 0, rec.resource, scratch.put(b), 0);
    if (r < 0n) warn(`rlimit ${rec.resource} not restored (soft ${rec.soft}, hard ${rec.hard}): errno ${-r}`);
  }
}
