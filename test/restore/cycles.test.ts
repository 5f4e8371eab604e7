// One process dumped and restored 20 times in a row: each incarnation comes back with the same
// PID, map and fds, and its counter goes on growing.
import fs from 'node:fs';
import t from 'tap';
import { makeSubreaper, procSnapshot, reapPid, startFixture, tmpdir } from '../helpers/index.js';
import { consecutive, dump, identity, killRestoredAtTeardown, restoreDetached, tickNumbers, tickValues } from './util.js';

makeSubreaper();

const CYCLES = 20;

/** "pipeline 'ckpt dump' succeeded in 145ms" -> 145: ckpt's own time, without Node's start. */
const stepMs = (stdout: string) => Number(/succeeded in (\d+)ms/.exec(stdout)?.[1] ?? NaN);

t.test(`${CYCLES} dump/restore cycles in a row on one process`, async (t) => {
  const fx = await startFixture('counter', [], { t });
  await fx.waitTicks(2);
  const pid = fx.pid;
  const first = procSnapshot(pid);
  const { state: _, ...ids } = identity(pid);
  killRestoredAtTeardown(t, pid);
  const base = tmpdir(t);
  const timings: string[] = [];

  for (let i = 1; i <= CYCLES; i++) {
    const dir = `${base}/image-${i}`;
    const counterBefore = tickValues(fx.lines(), 'counter').pop()!;
    const d = await dump(pid, dir);
    // The first incarnation is Node's child; the restored ones are ours as subreaper.
    const ended = i === 1 ? await fx.exited : await reapPid(pid);
    if (ended?.signal !== 9) t.fail(`cycle ${i}: the dumped process ended with ${JSON.stringify(ended)}, not SIGKILL`);
    const r = await restoreDetached(dir);
    if (r.pid !== pid) t.fail(`cycle ${i}: restored as ${r.pid}`);
    const from = fx.lines().length;
    await fx.waitTicks(2);

    const snap = procSnapshot(pid);
    if (snap.maps !== first.maps) t.equal(snap.maps, first.maps, `cycle ${i}: maps as before the first dump`);
    const { state: __, ...idsNow } = identity(pid);
    if (JSON.stringify(idsNow) !== JSON.stringify(ids)) t.same(idsNow, ids, `cycle ${i}: same comm, group, session, parent`);
    const after = tickValues(fx.lines().slice(from), 'counter');
    if (!(after.length >= 2 && after[0]! > counterBefore && after[1]! > after[0]!)) {
      t.fail(`cycle ${i}: counter ${counterBefore} before the dump, then ${after.join(' ')}`);
    }
    timings.push(`cycle ${i}: dump ${d.ms.toFixed(0)} ms (ckpt ${stepMs(d.stdout)} ms), restore ${r.run.ms.toFixed(0)} ms (ckpt ${stepMs(r.run.stdout)} ms)`);
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const ticks = tickNumbers(fx.lines());
  t.ok(consecutive(ticks) && ticks[0] === 1, `ticks 1..${ticks[ticks.length - 1]} without a gap or a repeat over ${CYCLES} cycles`);
  t.equal(fx.lines().find((l) => l.startsWith('FAIL')), undefined, 'no FAIL line');
  const counts = tickValues(fx.lines(), 'counter');
  t.ok(counts.every((c, i) => i === 0 || c > counts[i - 1]!), 'the counter grew at every tick');
  t.comment(`wall time of each CLI run (Node start included), ckpt's own time in brackets:\n${timings.join('\n')}`);
});
