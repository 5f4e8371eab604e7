// One process holding every kind of descriptor, dumped and restored 50 times in a row: each
// incarnation has the same descriptor table and every descriptor keeps working and keeps its state.
import fs from 'node:fs';
import t from 'tap';
import { makeSubreaper, procSnapshot, reapPid, startFixture, tmpdir } from '../helpers/index.js';
import { consecutive, dump, killSession, restoreDetached, tickNumbers, tickValues } from './util.js';

makeSubreaper();

const CYCLES = 50;

/** The descriptor table in words, without offsets (the appended file's grows). */
const fdTable = (pid: number) => procSnapshot(pid).fds.map((l) => l.replace(/ pos=\d+$/, ''));

t.test(`${CYCLES} dump/restore cycles of a process holding every kind of descriptor`, async (t) => {
  const fx = await startFixture('allfds', (d) => [d], { t });
  const P = fx.pid;
  const C = Number(fx.readyInfo.child);
  t.teardown(() => killSession(P));
  await fx.waitTicks(3);
  const table = fdTable(P);
  t.ok(table.length >= 30, `the fixture holds ${table.length} descriptors`);
  const base = tmpdir(t);
  let failures = 0;
  const fail = (what: string) => {
    failures++;
    t.fail(what);
  };

  for (let i = 1; i <= CYCLES && failures === 0; i++) {
    const dir = `${base}/image-${i}`;
    const timerBefore = tickValues(fx.lines(), 'timer').pop()!;
    await dump(P, dir);
    // The first incarnation is Node's child; the restored ones are ours as subreaper, as is the
    // child once its parent is gone.
    const ended = i === 1 ? await fx.exited : await reapPid(P);
    await reapPid(C);
    if (ended?.signal !== 9) fail(`cycle ${i}: the dumped process ended with ${JSON.stringify(ended)}`);
    const pid = await restoreDetached(dir);
    if (pid !== P) fail(`cycle ${i}: restored as ${pid}`);
    const from = fx.lines().length;
    await fx.waitTicks(3);
    const after = fx.lines().slice(from);
    const failLine = after.find((l) => l.startsWith('FAIL'));
    if (failLine) fail(`cycle ${i}: ${failLine}`);
    const now = fdTable(P);
    if (JSON.stringify(now) !== JSON.stringify(table)) fail(`cycle ${i}: descriptor table\n${now.join('\n')}\nnot\n${table.join('\n')}`);
    if (!(tickValues(after, 'timer').pop()! > timerBefore)) fail(`cycle ${i}: the timerfd stopped`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  t.equal(failures, 0, `${CYCLES} cycles without a failure`);
  const ticks = tickNumbers(fx.lines());
  t.ok(consecutive(ticks) && ticks[0] === 1, `ticks 1..${ticks.at(-1)} without a gap or a repeat`);
});
