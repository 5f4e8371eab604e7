// The tree fixture (P session leader; children A and B, B in its own process group; the
// grandchild G; a zombie Z; a token ring P -> A -> G -> P over pipes; shared anonymous memory)
// through 5 dump/restore cycles: `ps -o pid,ppid,pgid,sid,comm` of the session stays the
// same, and the ring, B and the zombie check go on without a FAIL.
import fs from 'node:fs';
import t from 'tap';
import { makeSubreaper, reapPid, startFixture, tmpdir } from '../helpers/index.js';
import { consecutive, dump, fdSharing, increasing, killSession, reapAll, restoreDetached, sessionPids, sessionPs, tickNumbers, tickValues } from './util.js';

makeSubreaper();

const CYCLES = 5;

function stateOf(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
}

t.test('a process tree survives 5 cycles with its PIDs, parents, groups, session and zombie', async (t) => {
  const fx = await startFixture('tree', [], { t });
  const P = fx.pid;
  // Registered after startFixture's own teardown, so it runs after it: whatever of the
  // session is left (children, the zombie, a restored root) is killed and reaped by PID.
  t.teardown(() => killSession(P));
  const [A, B, G, Z] = (['a', 'b', 'g', 'z'] as const).map((k) => Number(fx.readyInfo[k]));
  t.match(fx.ready, /^ready pid=\d+ a=\d+ b=\d+ g=\d+ z=\d+$/);
  const others = [A!, B!, G!, Z!];
  t.equal(new Set([P, ...others]).size, 5, 'five different PIDs');
  await fx.waitTicks(3);

  const ps = sessionPs(P);
  const me = process.pid;
  t.same(ps, [
    `${P} ${me} ${P} ${P} tree`,
    `${Z} ${P} ${P} ${P} tree`,
    `${A} ${P} ${P} ${P} tree`,
    `${G} ${A} ${P} ${P} tree`,
    `${B} ${P} ${B} ${P} tree`,
  ].sort((x, y) => Number(x.split(' ')[0]) - Number(y.split(' ')[0])),
  'the tree as the fixture describes it: P under this test, two groups (P and B), one session');
  t.equal(stateOf(Z!), 'Z', `${Z} is a zombie`);
  const live = [P, A!, B!, G!];
  const files = fdSharing(live);
  const logDesc = files.filter((l) => / -> .*tree\.log /.test(l)).map((l) => l.split(' desc=')[1]);
  t.ok(logDesc.length === 4 && new Set(logDesc).size === 1, `the log is one open file description in all four: ${logDesc.join(' ')}`);
  t.equal(new Set(files.flatMap((l) => /pipe:#\d+/.exec(l) ?? [])).size, 3, 'three pipes');
  const images = tmpdir(t);

  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    await dump(P, `${images}/${cycle}`);
    // The root is child_process's child the first time, ours (subreaper) later; the others
    // were reparented to us when their parents died.
    if (cycle === 1) t.same(await fx.exited, { code: null, signal: 9 }, 'the dump killed the root');
    else t.same(await reapPid(P), { code: null, signal: 9 }, `cycle ${cycle}: the dump killed the root`);
    await reapAll(others);
    t.same(sessionPids(P), [], `cycle ${cycle}: nothing left of the session`);
    const lastBefore = fx.lastTick();
    const tokenBefore = tickValues(fx.lines(), 'token').pop()!;
    const from = fx.lines().length;

    t.equal(await restoreDetached(`${images}/${cycle}`), P, `cycle ${cycle}: restored with the root's PID`);
    t.same(sessionPs(P), ps, `cycle ${cycle}: ps -o pid,ppid,pgid,sid,comm as before`);
    t.equal(stateOf(Z!), 'Z', `cycle ${cycle}: ${Z} is a zombie again`);
    t.same(fdSharing(live), files, `cycle ${cycle}: the same fds on the same pipes and files, descriptions shared as before`);

    await fx.waitTicks(3);
    t.equal(fx.lines().find((l) => l.startsWith('FAIL')), undefined, `cycle ${cycle}: no FAIL`);
    t.equal(fx.lines().slice(from).find((l) => l.startsWith('ready')), undefined, `cycle ${cycle}: it went on, it did not start again`);
    const ticks = tickNumbers(fx.lines());
    t.ok(ticks[0] === 1 && consecutive(ticks) && ticks.length >= lastBefore + 3,
      `cycle ${cycle}: ticks go on from ${lastBefore}: ${ticks.slice(-5).join(' ')}`);
    const tokens = tickValues(fx.lines().slice(from), 'token');
    t.ok(tokens[0]! > tokenBefore && increasing(tokens), `cycle ${cycle}: the token goes round from ${tokenBefore}: ${tokens.join(' ')}`);
  }

  // The fixture looks at its zombie (and at B's progress) every 10th tick: let it do that in
  // the last incarnation.
  const lastBefore = fx.lastTick();
  const reached = await fx.waitTicks(11);
  const checked = Math.ceil((lastBefore + 1) / 10) * 10;
  t.ok(checked <= reached, `tick ${checked} (a zombie check) came after the last restore, at ${lastBefore}`);
  t.equal(fx.lines().find((l) => l.startsWith('FAIL')), undefined, 'no FAIL: zombie there with status 42, B progressing');
  t.same(sessionPs(P), ps, 'ps as before at the end too');

  // Once its parent is gone the zombie is ours to reap: with the status it exited with.
  for (const pid of [P, A!, B!, G!]) process.kill(pid, 'SIGKILL');
  t.same(await reapPid(P), { code: null, signal: 9 }, 'root killed');
  t.same(await reapPid(Z!), { code: 42, signal: null }, `the restored zombie ${Z} exited with status 42`);
  await reapAll([A!, B!, G!]);
  t.same(sessionPids(P), [], 'the whole session killed and reaped');
});
