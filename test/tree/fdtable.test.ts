// A descriptor table shared by two processes (clone with CLONE_FILES) is one table again after
// restore: what one process opens, the other sees, and what it closes goes for both.
import t from 'tap';
import { trySyscall } from '../../src/sys/libc.js';
import { makeSubreaper, reapPid, startFixture, tmpdir } from '../helpers/index.js';
import { dump, increasing, killSession, restoreDetached, tickValues } from './util.js';

makeSubreaper();

const SYS_KCMP = 312;
const KCMP_FILES = 2;
const sameTable = (a: number, b: number) => trySyscall(SYS_KCMP, a, b, KCMP_FILES, 0, 0) === 0;

t.test('fdtable: parent and CLONE_FILES child share one table through 3 cycles', async (t) => {
  const fx = await startFixture('fdtable', [], { t });
  const P = fx.pid;
  const C = Number(fx.readyInfo.child);
  t.teardown(() => killSession(P));
  t.ok(sameTable(P, C), 'one table before the dump');
  await fx.waitTicks(3);
  for (let cycle = 1; cycle <= 3; cycle++) {
    const image = `${tmpdir(t)}/image`;
    await dump(P, image);
    if (cycle === 1) await fx.exited;
    else await reapPid(P);
    await reapPid(C);
    const from = fx.lines().length;
    t.equal(await restoreDetached(image), P, `cycle ${cycle}: restored with PID ${P}`);
    t.ok(sameTable(P, C), `cycle ${cycle}: parent ${P} and child ${C} share one descriptor table again`);
    const deadline = Date.now() + 5000;
    while (fx.lines().slice(from).filter((l) => l.startsWith('tick')).length < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const after = fx.lines().slice(from);
    t.equal(after.find((l) => l.startsWith('FAIL')), undefined, `cycle ${cycle}: no FAIL`);
    const rounds = tickValues(after, 'rounds');
    t.ok(rounds.length >= 3 && increasing(rounds), `cycle ${cycle}: rounds of open/close across the table go on: ${rounds.join(' ')}`);
  }
});
