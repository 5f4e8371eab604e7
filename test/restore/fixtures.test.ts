// Each C fixture dumped (which ends it) and restored with `ckpt restore -d`: same PID, the
// same /proc/PID/maps and fds, and it goes on where it stopped, its own per-tick checks passing.
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { makeSubreaper, procSnapshot, startFixture, tmpdir, type FixtureProcess, type ProcSnapshot } from '../helpers/index.js';
import { ckpt, consecutive, cycle, dump, exeOf, identity, killRestoredAtTeardown, restoreDetached, tickNumbers, tickValues } from './util.js';

makeSubreaper();

const O_APPEND = 0o2000;

/**
 * fds of a snapshot with the offsets of O_APPEND files (the log) left out: the process appends
 * to them between the snapshot and the dump.
 */
function settledFds(snap: ProcSnapshot): string[] {
  return snap.fds.map((l) => {
    const flags = /flags=0o([0-7]+)/.exec(l);
    return flags && (parseInt(flags[1]!, 8) & O_APPEND) !== 0 ? l.replace(/ pos=\d+$/, ' pos=(append)') : l;
  });
}

/**
 * Snapshot, dump, restore; then checks what every fixture must show: its PID back on the same
 * binary, maps and fds as before, tick numbers going on from the last one logged before the dump
 * (no gap, no repeat, no FAIL) for `after` more ticks. Returns the log index where the restored
 * process's lines start.
 */
async function roundTrip(tt: Test, fx: FixtureProcess, after = 4): Promise<number> {
  const dir = `${tmpdir(tt)}/image`;
  const before = procSnapshot(fx.pid);
  const exe = exeOf(fx.pid);
  const { state: _, ...ids } = identity(fx.pid);
  await cycle(tt, fx, dir);
  const from = fx.lines().length;
  const lastBefore = fx.lastTick();

  tt.equal(exeOf(fx.pid), exe, `PID ${fx.pid} runs ${exe} again`);
  const { state: __, ...idsAfter } = identity(fx.pid);
  tt.same(idsAfter, ids, 'same comm, session and process group; parent: this test (subreaper), as before');
  const restored = procSnapshot(fx.pid);
  tt.equal(restored.maps, before.maps, '/proc/PID/maps as before the dump');
  tt.same(settledFds(restored), settledFds(before), 'fds, their flags and offsets as before the dump');

  await fx.waitTicks(after);
  const ticks = tickNumbers(fx.lines());
  tt.ok(ticks.length >= lastBefore + after && consecutive(ticks) && ticks[0] === 1,
    `ticks continue from ${lastBefore} without a gap or a restart: ${ticks.slice(Math.max(0, lastBefore - 3), lastBefore + 3).join(' ')}`);
  tt.equal(fx.lines().find((l) => l.startsWith('FAIL')), undefined, 'no FAIL line');
  return from;
}

t.test('counter: the counter goes on from where it was', async (t) => {
  const fx = await startFixture('counter', [], { t });
  await fx.waitTicks(3);
  await roundTrip(t, fx);
  const counts = tickValues(fx.lines(), 'counter');
  t.ok(counts.every((c, i) => i === 0 || c > counts[i - 1]!), `counter strictly increasing across the restore: ${counts.join(' ')}`);
});

t.test('mem: every pattern intact, untouched memory still without pages', async (t) => {
  const fx = await startFixture('mem', ['--stack'], { t });
  await fx.waitTicks(3);
  const from = await roundTrip(t, fx, 3);
  process.kill(fx.pid, 'SIGUSR1');
  t.equal(await fx.waitForLine(/^full ok/, 5000, from), 'full ok untouched_resident=0 sparse_resident=64',
    'full check after restore; untouched pages not faulted in, sparse ones only where written');
  await fx.waitTicks(2);
});

t.test('filemap: private, copy-on-write, shared file and shared anonymous mappings', async (t) => {
  const fx = await startFixture('filemap', (dir) => [dir], { t });
  await fx.waitTicks(3);
  await roundTrip(t, fx);
});

t.test('signals: handlers, mask, pending signals and both timers survive', async (t) => {
  const fx = await startFixture('signals', [], { t });
  process.kill(fx.pid, 'SIGUSR1');
  await fx.waitForLine(/^usr1 1$/);
  await fx.waitTicks(4);
  const alarmsBefore = tickValues(fx.lines(), 'alarms').pop()!;
  const timerBefore = tickValues(fx.lines(), 'timer').pop()!;
  const from = await roundTrip(t, fx);

  process.kill(fx.pid, 'SIGUSR1');
  t.equal(await fx.waitForLine(/^usr1 /, 3000, from), 'usr1 2', 'SIGUSR1 after restore runs its handler, count goes on');
  process.kill(fx.pid, 'SIGUSR2');
  t.equal(await fx.waitForLine(/^usr2 /, 3000, from), 'usr2 1', 'SIGUSR2 (SA_SIGINFO) handler runs');
  // >= 10 more ticks of >= 50 ms: ITIMER_REAL (100 ms) fires >= 5 times, the POSIX timer (200 ms) >= 2.
  await fx.waitTicks(10);
  const after = fx.lines().slice(from);
  const alarms = tickValues(after, 'alarms');
  const timer = tickValues(after, 'timer');
  t.ok(alarms[0]! >= alarmsBefore && alarms[alarms.length - 1]! >= alarms[0]! + 4,
    `ITIMER_REAL keeps firing after restore: before ${alarmsBefore}, after ${alarms.join(' ')}`);
  t.ok(timer[0]! >= timerBefore && timer[timer.length - 1]! >= timer[0]! + 2,
    `POSIX timer keeps firing after restore: before ${timerBefore}, after ${timer.join(' ')}`);
});

t.test('signals --sleep: a nanosleep in progress at the dump completes after restore', async (t) => {
  // Dumped 2 s into a 3 s sleep: after restore it must sleep the remaining ~1 s, not 3 s again.
  const fx = await startFixture('signals', ['--sleep', '3'], { t });
  await new Promise((resolve) => setTimeout(resolve, 2000));
  t.notOk(fx.lines().some((l) => l.startsWith('slept')), 'still sleeping at the dump');
  const dir = `${tmpdir(t)}/image`;
  const before = procSnapshot(fx.pid);
  await cycle(t, fx, dir);
  const restoredAt = Date.now();
  t.equal(procSnapshot(fx.pid).maps, before.maps, '/proc/PID/maps as before the dump');
  const slept = await fx.waitForLine(/^slept /, 6000);
  const took = Date.now() - restoredAt;
  t.match(slept, /^slept ok elapsed=\d+$/);
  t.ok(Number(/elapsed=(\d+)/.exec(slept)![1]) >= 3000, `the whole sleep was slept: ${slept}`);
  t.ok(took < 2000, `only the remaining ~1 s after restore, not a fresh 3 s: ${took} ms`);
  await fx.waitTicks(3);
  t.same(tickNumbers(fx.lines()).slice(0, 3), [1, 2, 3], 'then ticks as usual');
});

t.test('files: offsets, flags, the deleted file and the dup survive', async (t) => {
  const fx = await startFixture('files', (dir) => [dir], { t });
  await fx.waitTicks(3);
  await roundTrip(t, fx, 6);
  const snap = procSnapshot(fx.pid);
  t.ok(snap.fds.includes(`100 -> ${fx.dir}/a flags=0o100002 pos=1234`), 'fd 100 still at offset 1234');
  const d = snap.fds.find((l) => l.startsWith(`${fx.readyInfo.d} -> `));
  t.match(d, / \(deleted\) flags=0o100002 pos=5000$/, 'the deleted file is open again, unlinked, at 5000');
});

t.test('files: a file gone from this machine stops the restore before anything is made', async (t) => {
  const fx = await startFixture('files', (dir) => [dir], { t });
  await fx.waitTicks(2);
  const image = `${tmpdir(t)}/image`;
  await dump(fx.pid, image);
  await fx.exited;
  fs.renameSync(`${fx.dir}/a`, `${fx.dir}/a.moved`);
  const refused = await ckpt(['restore', '-D', image, '-d']);
  t.not(refused.code, 0, 'the restore fails');
  t.match(refused.stderr, `cannot restore ${fx.pid}: file ${fx.dir}/a does not exist here`, 'naming the file');
  t.notOk(fs.existsSync(`/proc/${fx.pid}`), 'no process was made');
  fs.renameSync(`${fx.dir}/a.moved`, `${fx.dir}/a`);
  const { pid } = await restoreDetached(image);
  killRestoredAtTeardown(t, pid);
  t.equal(pid, fx.pid, 'with the file back, the same image restores');
});

t.test('signals: an interval timer that expired while the process was frozen keeps firing', async (t) => {
  // Frozen for longer than ITIMER_REAL's 100 ms interval before the dump reads it: the timer has
  // expired, SIGALRM is pending (it re-arms only when the process dequeues SIGALRM), so
  // getitimer says it_value 0 with it_interval 100 ms. Restore must not disarm it.
  const fx = await startFixture('signals', [], { t });
  await fx.waitTicks(3);
  const dir = tmpdir(t);
  const pipeline = `${dir}/freeze-dump.yaml`;
  fs.writeFileSync(pipeline, [
    'version: 1',
    'name: freeze-then-dump',
    'steps:',
    `  - freeze: { pid: ${fx.pid} }`,
    '  - sleep: { seconds: 0.3 }',
    `  - dump: { pid: ${fx.pid}, dir: image }`,
    '',
  ].join('\n'));
  const run = await ckpt(['run', pipeline]);
  t.equal(run.code, 0, `ckpt run freeze-dump.yaml (${run.signal ?? 'no signal'}): ${run.stderr}`);
  t.same(await fx.exited, { code: null, signal: 9 }, 'the dump ended the original');
  const alarmsBefore = tickValues(fx.lines(), 'alarms').pop()!;
  const { pid } = await restoreDetached(`${dir}/image`);
  killRestoredAtTeardown(t, pid);
  t.equal(pid, fx.pid);
  const from = fx.lines().length;
  await fx.waitTicks(12);
  const alarms = tickValues(fx.lines().slice(from), 'alarms');
  t.ok(alarms[alarms.length - 1]! >= alarmsBefore + 4, `ITIMER_REAL fires on after restore: before ${alarmsBefore}, after ${alarms.join(' ')}`);
});
