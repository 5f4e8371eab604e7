// Credentials: user and group ids, supplementary groups, capabilities. Restored last, because
// dropping privileges would stop ckpt from doing the rest.
import { readStatus } from '../sys/proc.js';
import type { RemoteScratch, RemoteThread } from '../sys/remote.js';
import { hex, parseHex } from '../image/hex.js';

const PR_SET_KEEPCAPS = 8;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

export interface CredsRecord {
  uid: number[]; // real, effective, saved, fs
  gid: number[];
  groups: number[];
  cap_inheritable: string;
  cap_permitted: string;
  cap_effective: string;
  cap_bounding: string;
  cap_ambient: string;
}

export function collectCreds(pid: number, tid?: number): CredsRecord {
  const st = readStatus(pid, tid);
  return {
    uid: st.uid, gid: st.gid, groups: st.groups,
    cap_inheritable: hex(st.capInh), cap_permitted: hex(st.capPrm), cap_effective: hex(st.capEff),
    cap_bounding: hex(st.capBnd), cap_ambient: hex(st.capAmb),
  };
}

const sameIds = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * Gives a restored thread its credentials, if they differ from what it has (ckpt's). The
 * syscalls act on the calling thread only (libc broadcasts them; we do it thread by thread).
 */
export function restoreCreds(pid: number, thread: RemoteThread, scratch: RemoteScratch, rec: CredsRecord): void {
  const leader = thread;
  const now = collectCreds(pid, thread.tid);
  if (sameIds(now.uid, rec.uid) && sameIds(now.gid, rec.gid) && sameIds(now.groups, rec.groups)
    && now.cap_permitted === rec.cap_permitted && now.cap_effective === rec.cap_effective
    && now.cap_inheritable === rec.cap_inheritable) return;

  const groups = Buffer.alloc(4 * Math.max(rec.groups.length, 1));
  rec.groups.forEach((g, i) => groups.writeUInt32LE(g, i * 4));
  leader.call('setgroups', rec.groups.length, scratch.put(groups));
  leader.call('setresgid', rec.gid[0], rec.gid[1], rec.gid[2]);
  leader.call('setfsgid', rec.gid[3]);
  // Keep capabilities across the uid change, then set exactly the saved ones.
  leader.call('prctl', PR_SET_KEEPCAPS, 1, 0, 0, 0);
  leader.call('setresuid', rec.uid[0], rec.uid[1], rec.uid[2]);
  leader.call('setfsuid', rec.uid[3]);
  const header = Buffer.alloc(8);
  header.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  header.writeInt32LE(0, 4);
  const data = Buffer.alloc(24); // two { effective, permitted, inheritable } u32 triples
  const [eff, prm, inh] = [rec.cap_effective, rec.cap_permitted, rec.cap_inheritable].map(parseHex);
  [eff, prm, inh].forEach((v, i) => {
    data.writeUInt32LE(Number(v & 0xffffffffn), i * 4);
    data.writeUInt32LE(Number(v >> 32n), 12 + i * 4);
  });
  leader.call('capset', scratch.put(header, 0), scratch.put(data, 64));
  leader.call('prctl', PR_SET_KEEPCAPS, 0, 0, 0, 0);
}
