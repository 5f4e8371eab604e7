// The process itself: identity in the tree, name, personality. Trees (children, groups,
// sessions) build on this record.
import fs from 'node:fs';
import { readComm, readStat } from '../sys/proc.js';

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

/** Name and personality of a restored process (its ids come from how it was created). */
export function restoreProcessAttributes(pid: number, rec: ProcessRecord, setPersonality: (p: number) => void): void {
  setPersonality(rec.personality);
  fs.writeFileSync(`/proc/${pid}/comm`, rec.comm);
}
