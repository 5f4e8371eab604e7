// Shared by the dump tests: the CLI run as a separate process, stopping a fixture and reading
// what /proc says of it, and reading the pages an image holds for a range of addresses.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { type PageReader } from '../../src/image/index.js';
import { readMaps, readStat, readStatus, type MapEntry } from '../../src/sys/proc.js';
import { bin, root, userEnv } from '../runner/helpers.js';

export const PAGE = 4096;
const GOLDEN = 0x9e3779b97f4a7c15n;
const MASK64 = (1n << 64n) - 1n;

/** fx_pattern of test/fixtures/fixture.h: word i of a region seeded with `seed`. */
export function pattern(i: bigint, seed: bigint): bigint {
  return ((i * GOLDEN) & MASK64) ^ seed;
}

/**
 * Index of the first word of `buf` (whose word 0 is word `first` of the region) that is not the
 * pattern, or -1.
 */
export function badWord(buf: Buffer, first: bigint, seed: bigint): number {
  for (let k = 0; k < buf.length / 8; k++) if (buf.readBigUInt64LE(k * 8) !== pattern(first + BigInt(k), seed)) return k;
  return -1;
}

export interface CkptRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CkptEvent {
  /** Milliseconds since the spawn. */
  at: number;
  event: Record<string, unknown>;
}

export interface CkptProcess {
  child: ChildProcess;
  /** --json events so far, with the time each line arrived. */
  events: CkptEvent[];
  done: Promise<CkptRun>;
  /** Resolves true once an event of this name has arrived, false if ckpt ends without one. */
  waitEvent(name: string): Promise<boolean>;
}

/** Starts `node bin/ckpt.js ...args` as a user would (without tap's loaders); --json lines are parsed as they come. */
export function spawnCkpt(args: string[]): CkptProcess {
  const started = Date.now();
  const child = spawn(process.execPath, [bin, ...args], { cwd: root, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const events: CkptEvent[] = [];
  const waiters: Array<{ name: string; resolve: (seen: boolean) => void }> = [];
  let stdout = '';
  let stderr = '';
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (!args.includes('--json')) return;
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      if (!line.startsWith('{"event"')) continue;
      const event = JSON.parse(line) as Record<string, unknown>;
      events.push({ at: Date.now() - started, event });
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (waiters[i]!.name === event.event) waiters.splice(i, 1)[0]!.resolve(true);
      }
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CkptRun>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      for (const w of waiters.splice(0)) w.resolve(false);
      resolve({ code, signal, stdout, stderr });
    });
  });
  let closed = false;
  void done.finally(() => (closed = true)).catch(() => undefined);
  const waitEvent = (name: string): Promise<boolean> => {
    if (events.some((e) => e.event.event === name)) return Promise.resolve(true);
    if (closed) return Promise.resolve(false);
    return new Promise((resolve) => waiters.push({ name, resolve }));
  };
  return { child, events, done, waitEvent };
}

/** Runs `node bin/ckpt.js ...args` to its end. */
export function ckpt(args: string[]): Promise<CkptRun> {
  return spawnCkpt(args).done;
}

/** State letter (stat) and TracerPid (status) of a process. */
export function procState(pid: number): { state: string; tracerPid: number } {
  return { state: readStat(pid).state, tracerPid: readStatus(pid).tracerPid };
}

/** The signal state of /proc/PID/status: blocked, pending (thread and process), ignored, caught. */
export function signalMasks(pid: number): Record<string, string> {
  const s = readStatus(pid);
  return {
    SigPnd: s.sigPnd.toString(16),
    ShdPnd: s.shdPnd.toString(16),
    SigBlk: s.sigBlk.toString(16),
    SigIgn: s.sigIgn.toString(16),
    SigCgt: s.sigCgt.toString(16),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** SIGSTOPs a process and waits until it is in group stop (state T). */
export async function stopProcess(pid: number, timeoutMs = 2000): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const deadline = Date.now() + timeoutMs;
  while (readStat(pid).state !== 'T') {
    if (Date.now() > deadline) throw new Error(`process ${pid} did not stop within ${timeoutMs} ms (state ${readStat(pid).state})`);
    await sleep(5);
  }
}

/** /proc/PID/maps as the kernel prints it. */
export function rawMaps(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/maps`, 'utf8');
}

/** A VMA as `ckpt show --json` lists it. */
export interface ShownVma {
  start: string;
  end: string;
  perms: string;
  kind: string;
  offset: string;
  name?: string;
  file?: { path: string; dev: string; ino: number; size: number; mtime_ns: string; writable: boolean };
  vm_flags: string[];
  size: number;
  pages_saved: number;
}

export interface ShownProcess {
  pid: number;
  core: Record<string, any>;
  mm: Record<string, any>;
  vmas: ShownVma[];
  fds: Array<Record<string, any>>;
  pages: { runs: number; saved: number; bytes: number };
}

export interface ShownImage {
  dir: string;
  manifest: Record<string, any>;
  processes: ShownProcess[];
}

const SPECIAL: Record<string, string> = { '[vdso]': 'vdso', '[vvar]': 'vvar', '[vvar_vclock]': 'vvar_vclock', '[vsyscall]': 'vsyscall' };

/**
 * What `ckpt show --json` should list for one line of /proc/PID/maps: the same range, perms and
 * offset; the kind the kernel's name implies; the file (path and inode) of file mappings.
 */
export function expectedVma(m: MapEntry): Record<string, unknown> {
  const base = { start: `0x${m.start.toString(16)}`, end: `0x${m.end.toString(16)}`, perms: m.perms, offset: `0x${m.offset.toString(16)}` };
  if (SPECIAL[m.path]) return { ...base, kind: SPECIAL[m.path] };
  if (m.inode === 0) return m.path === '' ? { ...base, kind: 'anon' } : { ...base, kind: 'anon', name: m.path };
  if (m.shared && m.deleted && m.path === '/dev/zero') return { ...base, kind: 'shmem' };
  return { ...base, kind: 'file', file: { path: m.path, ino: m.inode } };
}

/** The fields of a shown VMA that expectedVma() describes. */
export function shownVma(v: ShownVma): Record<string, unknown> {
  const base = { start: v.start, end: v.end, perms: v.perms, offset: v.offset, kind: v.kind };
  if (v.file) return { ...base, file: { path: v.file.path, ino: v.file.ino } };
  return v.name === undefined ? base : { ...base, name: v.name };
}

/** The maps of `pid` as show should list them. */
export function expectedVmas(pid: number): Record<string, unknown>[] {
  return readMaps(pid).map(expectedVma);
}

/**
 * The saved contents of [addr, addr + len) from an image's pages; throws when any page of it is
 * not saved as data.
 */
export async function savedBytes(pages: PageReader, addr: bigint, len: number): Promise<Buffer> {
  const out = Buffer.alloc(len);
  let at = addr;
  const end = addr + BigInt(len);
  while (at < end) {
    const e = pages.entries.find((x) => x.kind === 'data' && x.addr <= at && at < x.addr + BigInt(x.pages * PAGE));
    if (!e) throw new Error(`no saved page holds 0x${at.toString(16)}`);
    const runEnd = e.addr + BigInt(e.pages * PAGE);
    const n = Number((runEnd < end ? runEnd : end) - at);
    const bytes = await pages.readRange(e.offset! + Number(at - e.addr), n);
    bytes.copy(out, Number(at - addr));
    at += BigInt(n);
  }
  return out;
}

/** Addresses of the saved (data) pages in [start, end). */
export function savedPagesIn(pages: PageReader, start: bigint, end: bigint): bigint[] {
  const out: bigint[] = [];
  for (const e of pages.entries) {
    if (e.kind !== 'data') continue;
    for (let p = 0; p < e.pages; p++) {
      const a = e.addr + BigInt(p * PAGE);
      if (a >= start && a < end) out.push(a);
    }
  }
  return out;
}

/** Mode bits of the image directory and of each file in it. */
export function imageModes(dir: string): { dir: string; files: Record<string, string> } {
  const mode = (p: string) => `0${(fs.statSync(p).mode & 0o7777).toString(8)}`;
  const files: Record<string, string> = {};
  for (const name of fs.readdirSync(dir).sort()) files[name] = mode(path.join(dir, name));
  return { dir: mode(dir), files };
}

/** Every file of the image dir at 0600. */
export function expectPrivate(t: Test, dir: string): void {
  const modes = imageModes(dir);
  t.equal(modes.dir, '0700', 'image directory is 0700');
  t.same(modes.files, Object.fromEntries(Object.keys(modes.files).map((n) => [n, '0600'])), 'every image file is 0600');
  t.ok(Object.keys(modes.files).includes('manifest.json'), 'the image has its manifest');
}

/** The error a dump of the `unsupported` fixture stops with: its io_uring, not supported yet. */
export function unsupportedErrors(readyInfo: Record<string, string>, pid: number): string[] {
  return [`unsupported fd ${readyInfo.io_uring}: io_uring in process ${pid}`];
}
