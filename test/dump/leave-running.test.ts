// `ckpt dump --leave-running` of each fixture: the process keeps running with its self-checks
// passing, its memory map, fd table and signal state are what they were, `ckpt show --json`
// lists exactly its mappings, and the saved pages hold what the fixture wrote.
//
// Each fixture is dumped twice: once while it runs (maps must be unchanged; only the offsets of
// files it appends to may move), and once while SIGSTOPped, when nothing may change at all:
// /proc/PID/maps, the fd table and the signal masks are compared byte for byte, and the process
// must still be stopped (a dump must not resume a process that was stopped) and untraced.
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ImageReader, type PageReader } from '../../src/image/index.js';
import { readMaps, readStatus, type MapEntry } from '../../src/sys/proc.js';
import { procSnapshot, startFixture, tmpdir, type FixtureProcess, type ProcSnapshot } from '../helpers/index.js';
import {
  badWord,
  ckpt,
  expectPrivate,
  expectedVma,
  PAGE,
  procState,
  rawMaps,
  savedBytes,
  savedPagesIn,
  shownVma,
  signalMasks,
  stopProcess,
  type ShownProcess,
  type ShownVma,
} from './helpers.js';

const MiB = 1 << 20;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** fds whose offset moves while the fixture runs (the log, files it appends to) shown without it. */
function settledFds(snap: ProcSnapshot, moving: number[]): string[] {
  return snap.fds.map((l) => (moving.some((fd) => l.startsWith(`${fd} -> `)) ? l.replace(/ pos=\d+$/, ' pos=*') : l));
}

/** Dumps the running fixture with --leave-running; its maps and (settled) fds must not change. */
async function dumpRunning(t: Test, fx: FixtureProcess, moving: number[] = [3]): Promise<void> {
  await fx.waitTicks(2);
  const maps = rawMaps(fx.pid);
  const fds = settledFds(procSnapshot(fx.pid), moving);
  const dir = path.join(tmpdir(t, 'ckpt-dump-test-'), 'image');
  const run = await ckpt(['dump', '-t', String(fx.pid), '-D', dir, '--leave-running']);
  t.equal(run.code, 0, `running dump exits 0 ${run.stderr}`);
  t.equal(rawMaps(fx.pid), maps, 'running: /proc/PID/maps unchanged');
  t.same(settledFds(procSnapshot(fx.pid), moving), fds, 'running: fd table unchanged');
  t.equal(procState(fx.pid).tracerPid, 0, 'running: not traced after the dump');
  await fx.waitTicks(3);
}

interface StoppedDump {
  dir: string;
  maps: MapEntry[];
  shown: ShownProcess;
  /** The last tick logged before the stop. */
  tick: number;
}

/**
 * SIGSTOPs the fixture (waiting `settleMs` more, for timers to make their signals pending),
 * dumps it with --leave-running, and checks that nothing about it changed and that `show --json`
 * lists exactly its mappings. The process is left stopped; resume() continues it.
 */
async function dumpStopped(t: Test, fx: FixtureProcess, settleMs = 0): Promise<StoppedDump> {
  await fx.waitTicks(2);
  await stopProcess(fx.pid);
  await sleep(settleMs);
  const tick = fx.lastTick();
  const before = { maps: rawMaps(fx.pid), snap: procSnapshot(fx.pid), signals: signalMasks(fx.pid) };
  const maps = readMaps(fx.pid);

  const dir = path.join(tmpdir(t, 'ckpt-dump-test-'), 'image');
  const run = await ckpt(['dump', '-t', String(fx.pid), '-D', dir, '--leave-running']);
  t.equal(run.code, 0, `dump exits 0 ${run.stderr}`);
  t.match(run.stdout + run.stderr, `dumped ${fx.pid}: `, 'dump says what it did');

  t.same(procState(fx.pid), { state: 'T', tracerPid: 0 }, 'still stopped, not traced');
  t.equal(rawMaps(fx.pid), before.maps, '/proc/PID/maps identical');
  t.same(procSnapshot(fx.pid), before.snap, 'fd table (links, flags, offsets) identical');
  t.same(signalMasks(fx.pid), before.signals, 'blocked, pending, ignored and caught signals identical');
  t.equal(fx.lastTick(), tick, 'no tick while stopped: the dump did not resume it');
  expectPrivate(t, dir);

  const show = await ckpt(['show', dir, '--json']);
  t.equal(show.code, 0, `show exits 0 ${show.stderr}`);
  const image = JSON.parse(show.stdout) as { processes: ShownProcess[]; manifest: { root_pid: number } };
  t.equal(image.manifest.root_pid, fx.pid);
  t.same(image.processes.map((p) => p.pid), [fx.pid], 'one process');
  const shown = image.processes[0]!;
  t.same(shown.vmas.map(shownVma), maps.map(expectedVma), 'show lists exactly the mappings of /proc/PID/maps');
  t.equal(shown.mm.exe, fs.readlinkSync(`/proc/${fx.pid}/exe`), 'exe');
  return { dir, maps, shown, tick };
}

/** SIGCONTs the fixture and waits for 3 more good ticks (a FAIL line rejects). */
async function resume(fx: FixtureProcess): Promise<number> {
  process.kill(fx.pid, 'SIGCONT');
  return fx.waitTicks(3);
}

function vmaAt(shown: ShownProcess, addr: bigint): ShownVma {
  const v = shown.vmas.find((x) => BigInt(x.start) <= addr && addr < BigInt(x.end));
  if (!v) throw new Error(`no VMA holds 0x${addr.toString(16)}`);
  return v;
}

async function openPages(t: Test, dir: string, pid: number): Promise<PageReader> {
  const reader = await ImageReader.open(dir);
  t.teardown(() => reader.close());
  await reader.verify();
  return reader.pages(pid);
}

t.test('mem: 64 MiB pattern, heap, stack, sparse and untouched memory', async (t) => {
  const fx = await startFixture('mem', ['--stack'], { t });
  await dumpRunning(t, fx);
  const { dir, shown } = await dumpStopped(t, fx);

  const seed = 0x5eed0001n;
  const big = BigInt(fx.readyInfo.big!);
  const heap = BigInt(fx.readyInfo.heap!);
  const stack = BigInt(fx.readyInfo.stack!);
  const sparse = BigInt(fx.readyInfo.sparse!);
  const untouched = BigInt(fx.readyInfo.untouched!);
  const pages = await openPages(t, dir, fx.pid);

  t.equal(savedPagesIn(pages, big, big + BigInt(64 * MiB)).length, 64 * MiB / PAGE, 'every page of big is saved');
  // The first and last page and 62 random ones, each checked word by word.
  const sample = [0, 64 * MiB / PAGE - 1, ...Array.from({ length: 62 }, () => Math.floor(Math.random() * (64 * MiB / PAGE)))];
  const bad: string[] = [];
  for (const p of sample) {
    const buf = await savedBytes(pages, big + BigInt(p * PAGE), PAGE);
    const w = badWord(buf, BigInt((p * PAGE) / 8), seed);
    if (w >= 0) bad.push(`page ${p} word ${w}`);
  }
  t.same(bad, [], `big: ${sample.length} sampled pages hold the pattern`);
  t.equal(badWord(await savedBytes(pages, heap, MiB), 0n, seed ^ 1n), -1, 'heap: 1 MiB of pattern');
  t.equal(badWord(await savedBytes(pages, stack, 4 * MiB), 0n, seed ^ 5n), -1, 'stack: 4 MiB of pattern');

  const sparsePages = savedPagesIn(pages, sparse, sparse + BigInt(64 * MiB));
  t.same(sparsePages, Array.from({ length: 64 }, (_, m) => sparse + BigInt(m * MiB)), 'sparse: only the one page per MiB it wrote');
  const sparseBad: number[] = [];
  for (let m = 0; m < 64; m++) {
    if (badWord(await savedBytes(pages, sparse + BigInt(m * MiB), PAGE), BigInt((m * MiB) / 8), seed ^ 4n) >= 0) sparseBad.push(m);
  }
  t.same(sparseBad, [], 'sparse: each written page holds its pattern');
  t.same(savedPagesIn(pages, untouched, untouched + BigInt(16 * MiB)), [], 'untouched: no page saved');
  t.ok(vmaAt(shown, big).pages_saved >= 64 * MiB / PAGE, 'show counts the saved pages of the VMA holding big');

  await resume(fx);
  const from = fx.lines().length;
  process.kill(fx.pid, 'SIGUSR1');
  t.equal(await fx.waitForLine(/^full ok/, 5000, from), 'full ok untouched_resident=0 sparse_resident=64', 'full self-check after the dumps');
});

t.test('filemap: private and shared file mappings, shared anonymous memory', async (t) => {
  const fx = await startFixture('filemap', (dir) => [dir], { t });
  await dumpRunning(t, fx);
  const { dir, shown, tick } = await dumpStopped(t, fx);
  const file = fx.readyInfo.file!;
  const at = (name: string) => vmaAt(shown, BigInt(fx.readyInfo[name]!));
  const ro = at('ro');
  const cow = at('cow');
  const shared = at('shared');
  const shanon = at('shanon');

  t.match(ro, { perms: 'r--p', kind: 'file', size: 8 * MiB, pages_saved: 0, file: { path: file, writable: false } }, 'ro: read-only private, nothing saved');
  t.match(cow, { perms: 'rw-p', kind: 'file', size: 8 * MiB, pages_saved: 4, file: { path: file, writable: false } }, 'cow: its 4 rewritten pages saved');
  t.match(shared, { perms: 'rw-s', kind: 'file', size: 8 * MiB, pages_saved: 0, file: { path: file, writable: true } }, 'shared: lives in the file');
  t.match(shanon, { perms: 'rw-s', kind: 'shmem', size: 2 * MiB, pages_saved: 512 }, 'shared anonymous: all 2 MiB saved');
  t.equal(shown.fds.find((f) => f.open.path === file)?.open.pos, '0', 'the data file fd is saved at its offset');

  const pages = await openPages(t, dir, fx.pid);
  const cowStart = BigInt(cow.start);
  const cowPages = [3, 100, 1000, 2047];
  t.same(savedPagesIn(pages, cowStart, BigInt(cow.end)), cowPages.map((p) => cowStart + BigInt(p * PAGE)), 'cow: exactly the pages it wrote');
  for (const p of cowPages) {
    t.equal(badWord(await savedBytes(pages, cowStart + BigInt(p * PAGE), PAGE), BigInt((p * PAGE) / 8), 0xc0c0c0c0n), -1, `cow page ${p}: its own pattern`);
  }
  const sh = await savedBytes(pages, BigInt(shanon.start), 2 * MiB);
  t.ok([BigInt(tick), BigInt(tick + 1)].includes(sh.readBigUInt64LE(0)), `shanon word 0 is the tick (${sh.readBigUInt64LE(0)}, last logged ${tick})`);
  t.equal(badWord(sh.subarray(8), 1n, 0x5a5a0001n), -1, 'shanon: the rest is its pattern');

  await resume(fx);
});

t.test('signals: handlers, blocked mask, pending signals, interval timers', async (t) => {
  const fx = await startFixture('signals', [], { t });
  process.kill(fx.pid, 'SIGUSR1');
  await fx.waitForLine(/^usr1 1$/);
  await dumpRunning(t, fx);
  // 250 ms stopped: both timers (100 and 200 ms) have fired, so their signals are pending and
  // the pending sets no longer change.
  const { shown } = await dumpStopped(t, fx, 250);
  const status = readStatus(fx.pid);
  const bits = (mask: bigint) => Array.from({ length: 64 }, (_, i) => i + 1).filter((s) => (mask >> BigInt(s - 1)) & 1n);
  const signo = (b64: string) => Buffer.from(b64, 'base64').readInt32LE(0);
  const { signals, timers, threads } = shown.core;

  const actions = signals.actions as Array<{ sig: number; handler: string; flags: string; mask: string }>;
  t.same(actions.filter((a) => BigInt(a.handler) > 1n).map((a) => a.sig), bits(status.sigCgt), 'handlers: the caught signals of /proc');
  t.same(actions.filter((a) => a.handler === '0x1').map((a) => a.sig), bits(status.sigIgn), 'SIG_IGN: the ignored signals of /proc');
  const usr2 = actions.find((a) => a.sig === 12)!;
  t.equal(BigInt(usr2.flags) & 0x10000004n, 0x10000004n, 'SIGUSR2: SA_SIGINFO|SA_RESTART');
  t.equal(usr2.mask, `0x${((1n << 1n) | (1n << 2n) | (1n << 27n)).toString(16)}`, 'SIGUSR2: sa_mask {SIGINT, SIGQUIT, SIGWINCH}');
  t.equal(BigInt(actions.find((a) => a.sig === 11)!.flags) & 0x08000000n, 0x08000000n, 'SIGSEGV: SA_ONSTACK');

  t.equal(threads.length, 1);
  const thread = threads[0];
  t.equal(thread.blocked, `0x${status.sigBlk.toString(16)}`, 'blocked mask as in /proc');
  // A handler running at that moment adds its signal (and its sa_mask) to the mask for a while.
  const inHandler = [14, 35, 10, 12, 2, 3, 28].reduce((m, sig) => m | (1n << BigInt(sig - 1)), 0n);
  t.equal(status.sigBlk & ~inHandler, (1n << 12n) | (1n << 33n), 'which is {SIGPIPE, SIGRTMIN} (besides a running handler\'s)');
  t.same(thread.sigaltstack, { sp: fx.readyInfo.altstack, flags: 0, size: '0x10000' }, 'sigaltstack');
  t.same((thread.pending as string[]).map(signo).sort((a, b) => a - b), bits(status.sigPnd), 'thread-pending signals as in /proc');
  t.same((signals.shared_pending as string[]).map(signo).sort((a, b) => a - b), bits(status.shdPnd), 'process-pending signals as in /proc');
  t.ok(bits(status.shdPnd).includes(13) && bits(status.sigPnd).includes(34), 'SIGPIPE and SIGRTMIN among them');

  t.match(timers.itimers, [{ which: 'real', interval: [0, 100000] }], 'ITIMER_REAL every 100 ms');
  t.match(timers.posix, [{ clock: 1, notify: 'signal', signal: 35, sigev_value: '0xc0ffee', interval: [0, 200000000] }], 'POSIX timer');

  await resume(fx);
  const counts = (key: string) => fx.lines().flatMap((l) => {
    const m = new RegExp(`^tick \\d+ ok .*\\b${key}=(\\d+)`).exec(l);
    return m ? [Number(m[1])] : [];
  });
  const alarms = counts('alarms').length;
  await fx.waitTicks(6);
  t.ok(counts('alarms').at(-1)! > counts('alarms')[alarms - 1]!, 'ITIMER_REAL still fires');
  t.ok(counts('timer').at(-1)! > counts('timer')[alarms - 1]!, 'POSIX timer still fires');
  process.kill(fx.pid, 'SIGUSR2');
  await fx.waitForLine(/^usr2 1$/);
  await fx.waitTicks(1);
});

t.test('files: open files at offsets, dup, O_APPEND, O_CLOEXEC, a deleted file', async (t) => {
  const fx = await startFixture('files', (dir) => [dir], { t });
  await dumpRunning(t, fx, [3, Number(fx.readyInfo.c)]);
  const { shown } = await dumpStopped(t, fx);
  const O_CLOEXEC = 0o2000000;
  const snap = procSnapshot(fx.pid);
  // Each fd as show lists it: {fd, cloexec, file (the open file's id), open (the open file)}.
  const byFd = new Map(shown.fds.map((f) => [f.fd as number, f]));
  const fd = (name: string) => byFd.get(Number(fx.readyInfo[name]))!;
  // The fd table as procSnapshot writes it, rebuilt from the image (devices have no offset there).
  const fromImage = (n: number): string => {
    const { cloexec, open } = byFd.get(n)!;
    const flags = `flags=0o${((open.flags as number) | (cloexec ? O_CLOEXEC : 0)).toString(8)}`;
    if (open.kind === 'regular') return `${n} -> ${open.path}${open.deleted ? ' (deleted)' : ''} ${flags} pos=${open.pos}`;
    return `${n} -> ${open.path} ${flags}`;
  };
  const fdsOfProc = snap.fds.map((l) => (/^\d+ -> \/dev\//.test(l) ? l.replace(/ pos=\d+$/, '') : l));
  t.same(shown.fds.map((f) => fromImage(f.fd as number)), fdsOfProc, 'show lists every fd with its file, flags and offset');
  t.equal(fd('dup').file, fd('a').file, 'fd 100 and A share one open file');
  t.equal(fd('dup').cloexec, false);
  t.not(fd('b').file, fd('a').file, 'B is another open file');
  t.match(fd('b'), { cloexec: true, open: { pos: '4096' } }, 'B: O_CLOEXEC at 4096');
  t.match(fd('d').open, { path: `${fx.dir}/d`, pos: '5000', deleted: { blob: String } }, 'D: deleted, its contents saved');
  t.match(fd('dir').open, { type: 'directory', path: fx.dir });
  await resume(fx);
});
