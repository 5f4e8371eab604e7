// The mm of a process as the kernel describes it outside its VMAs: code/data/brk/stack/arg/env
// bounds, the auxiliary vector and the executable; plus the kernel's own vDSO trio, which a
// restored process needs at the address its libc cached.
import crypto from 'node:crypto';
import { readAuxvRaw, readExeLink, readStat, type MapEntry } from '../sys/proc.js';
import type { ProcMem } from '../sys/memory.js';
import type { RemoteScratch, RemoteThread } from '../sys/remote.js';
import { hex, parseHex } from '../image/hex.js';

export const MM_FIELDS = [
  'start_code', 'end_code', 'start_data', 'end_data', 'start_brk', 'brk', 'start_stack',
  'arg_start', 'arg_end', 'env_start', 'env_end',
] as const;
export type MmFields = Record<(typeof MM_FIELDS)[number], string>;

export const VDSO_PARTS = ['[vvar]', '[vvar_vclock]', '[vdso]'] as const;
export interface VdsoRecord {
  /** Each part of the trio present, with its bounds. */
  parts: { name: (typeof VDSO_PARTS)[number]; start: string; end: string }[];
  /** sha256 of the [vdso] code: a restored process runs the code its libc found at dump time. */
  sha256: string;
}

export interface MmRecord { exe: string; fields: MmFields; auxv: string; vdso: VdsoRecord | null }

export function vdsoParts(maps: MapEntry[]): MapEntry[] {
  return VDSO_PARTS.map((n) => maps.find((m) => m.path === n)).filter((m): m is MapEntry => m !== undefined);
}

function vdsoRecord(maps: MapEntry[], mem: ProcMem): VdsoRecord | null {
  const parts = vdsoParts(maps);
  const code = parts.find((p) => p.path === '[vdso]');
  if (!code) return null;
  const bytes = Buffer.alloc(Number(code.end - code.start));
  mem.read(code.start, bytes);
  return {
    parts: parts.map((p) => ({ name: p.path as VdsoRecord['parts'][number]['name'], start: hex(p.start), end: hex(p.end) })),
    sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
  };
}

export function collectMm(pid: number, leader: RemoteThread, maps: MapEntry[], mem: ProcMem): MmRecord {
  const st = readStat(pid);
  const brk = leader.call('brk', 0);
  const fields: MmFields = {
    start_code: hex(st.start_code), end_code: hex(st.end_code), start_data: hex(st.start_data),
    end_data: hex(st.end_data), start_brk: hex(st.start_brk), brk: hex(brk), start_stack: hex(st.start_stack),
    arg_start: hex(st.arg_start), arg_end: hex(st.arg_end), env_start: hex(st.env_start), env_end: hex(st.env_end),
  };
  return { exe: readExeLink(pid), fields, auxv: readAuxvRaw(pid).toString('base64'), vdso: vdsoRecord(maps, mem) };
}

export class VdsoMismatchError extends Error {}

/**
 * Whether this kernel's vDSO trio (as mapped in `maps`) can stand in for the image's: same parts,
 * sizes and relative layout, same code. Returns the reason when not.
 */
export function vdsoMismatch(image: VdsoRecord, maps: MapEntry[], mem: ProcMem): string | null {
  const here = vdsoRecord(maps, mem);
  if (!here) return 'this kernel maps no vDSO';
  const layout = (r: VdsoRecord) => {
    const base = parseHex(r.parts[0].start);
    return r.parts.map((p) => `${p.name}+${parseHex(p.start) - base}:${parseHex(p.end) - parseHex(p.start)}`).join(' ');
  };
  if (layout(here) !== layout(image)) return `vDSO layout differs (image: ${layout(image)}; here: ${layout(here)})`;
  if (here.sha256 !== image.sha256) return 'vDSO code differs from the image\'s (another kernel build)';
  return null;
}

const MREMAP_MAYMOVE = 1;
const MREMAP_FIXED = 2;

/**
 * Moves the vDSO trio to the image's addresses. The parts keep their relative offsets; when old
 * and new ranges overlap, they go through a free temporary range first.
 */
export function moveVdso(remote: RemoteThread, image: VdsoRecord, current: MapEntry[], freeRange: (len: bigint) => bigint): void {
  const parts = vdsoParts(current);
  const base = parts[0].start;
  const target = parseHex(image.parts[0].start);
  if (target === base) return;
  const span = parts[parts.length - 1].end - base;
  const moveAll = (from: bigint, to: bigint) => {
    for (const p of parts) {
      const len = p.end - p.start;
      remote.call('mremap', from + (p.start - base), len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to + (p.start - base));
    }
  };
  if (target < base + span && base < target + span) {
    const tmp = freeRange(span);
    moveAll(base, tmp);
    moveAll(tmp, target);
  } else {
    moveAll(base, target);
  }
}

const PR_SET_MM = 35;
const PR_SET_MM_MAP = 14;
const PRCTL_MM_MAP_SIZE = 104;

/** PR_SET_MM_MAP: bounds, auxv and exe in one call (needs CAP_CHECKPOINT_RESTORE). */
export function setMm(remote: RemoteThread, scratch: RemoteScratch, rec: MmRecord, exeFd: number): void {
  const auxv = Buffer.from(rec.auxv, 'base64');
  const auxvAddr = scratch.put(auxv, PRCTL_MM_MAP_SIZE);
  const map = Buffer.alloc(PRCTL_MM_MAP_SIZE);
  MM_FIELDS.forEach((f, i) => map.writeBigUInt64LE(parseHex(rec.fields[f]), i * 8));
  map.writeBigUInt64LE(auxvAddr, 88);
  map.writeUInt32LE(auxv.length, 96);
  map.writeUInt32LE(exeFd, 100);
  remote.call('prctl', PR_SET_MM, PR_SET_MM_MAP, scratch.put(map, 0), PRCTL_MM_MAP_SIZE, 0);
}
