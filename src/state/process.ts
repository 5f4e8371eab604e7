// The process itself: identity in the tree, name, personality. Trees (children, groups,
// sessions) build on this record.
import fs from 'node:fs';
import { readComm, readStat } from '../sys/proc.js';
import type { RemoteScratch, RemoteThread } from '../sys/remote.js';

export interface ProcessRecord {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  comm: string;
  personality: number;
}

export function collectProcess(pid: number): ProcessRecord {
  const st = readStat(pid);
  return {
    pid, ppid: st.ppid, pgid: st.pgrp, sid: st.session, comm: readComm(pid),
    personality: parseInt(fs.readFileSync(`/proc/${pid}/personality`, 'utf8'), 16),
  };
}

const PR_SET_NAME = 15;

/**
 * Name and personality of a restored process (its ids come from how it was created). The name
 * is set from inside: /proc/PID/comm is writable only by the process's own threads.
 */
export function restoreProcessAttributes(leader: RemoteThread, scratch: RemoteScratch, rec: ProcessRecord): void {
  leader.call('personality', rec.personality);
  leader.call('prctl', PR_SET_NAME, scratch.put(Buffer.from(`${rec.comm}\0`)), 0, 0, 0);
}
