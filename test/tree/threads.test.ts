// The threads fixture (8 workers and the main thread around a mutex and two condition
// variables, thread-local values checked on every item) through 5 dump/restore cycles: each
// time the same TIDs, the same maps, and the fixture's own invariants keep holding.
import t from 'tap';
import { makeSubreaper, procSnapshot, reapPid, startFixture, tmpdir } from '../helpers/index.js';
import { consecutive, dump, increasing, restoreDetached, taskIds, tickNumbers, tickValues } from './util.js';

makeSubreaper();

const CYCLES = 5;

t.test('8 threads survive 5 cycles with their TIDs and invariants', async (t) => {
  const fx = await startFixture('threads', [], { t });
  const workers = fx.readyInfo.tids!.split(',').map(Number);
  t.equal(workers.length, 8, `8 worker TIDs in the ready line: ${fx.ready}`);
  t.equal(new Set(workers).size, 8, 'all different');
  const tids = [fx.pid, ...workers].sort((a, b) => a - b);
  t.same(taskIds(fx.pid), tids, '/proc/PID/task: the main thread and the 8 workers');
  await fx.waitTicks(3);
  const images = tmpdir(t);

  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const before = procSnapshot(fx.pid);
    await dump(fx.pid, `${images}/${cycle}`);
    // The first incarnation is child_process's child, the restored ones our own (subreaper).
    if (cycle === 1) t.same(await fx.exited, { code: null, signal: 9 }, 'the dump killed it');
    else t.same(await reapPid(fx.pid), { code: null, signal: 9 }, `cycle ${cycle}: the dump killed it`);
    const lastBefore = fx.lastTick();
    const consumedBefore = tickValues(fx.lines(), 'consumed').pop()!;
    const from = fx.lines().length;

    t.equal(await restoreDetached(`${images}/${cycle}`), fx.pid, `cycle ${cycle}: restored with its PID`);
    t.same(taskIds(fx.pid), tids, `cycle ${cycle}: /proc/PID/task lists the same TIDs`);
    t.equal(procSnapshot(fx.pid).maps, before.maps, `cycle ${cycle}: /proc/PID/maps as before the dump`);

    await fx.waitTicks(3);
    const after = fx.lines().slice(from);
    t.equal(fx.lines().find((l) => l.startsWith('FAIL')), undefined, `cycle ${cycle}: no FAIL`);
    t.equal(after.find((l) => l.startsWith('ready')), undefined, `cycle ${cycle}: it went on, it did not start again`);
    const ticks = tickNumbers(fx.lines());
    t.ok(ticks[0] === 1 && consecutive(ticks) && ticks.length >= lastBefore + 3,
      `cycle ${cycle}: ticks go on from ${lastBefore}: ${ticks.slice(-5).join(' ')}`);
    const consumed = tickValues(after, 'consumed');
    t.ok(consumed[0]! > consumedBefore && increasing(consumed),
      `cycle ${cycle}: consumed grows from ${consumedBefore}: ${consumed.join(' ')}`);
    t.same(taskIds(fx.pid), tids, `cycle ${cycle}: still the same threads after 3 ticks`);
  }

  // Every worker still consumes: within one tick all 8 made progress (idle=-1).
  const from = fx.lines().length;
  await fx.waitTicks(10);
  const idle = tickValues(fx.lines().slice(from), 'idle');
  t.ok(idle.includes(-1), `a tick in which every worker consumed: idle=${idle.join(',')}`);
});
