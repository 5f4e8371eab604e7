// Restoring a tree whose PIDs are taken: without --pid-ns restore refuses with the PID and its
// holder and leaves the holders alone; with --pid-ns it restores in a new PID namespace.
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { makeSubreaper, reapPid, startFixture, tmpdir } from '../helpers/index.js';
import { cli, consecutive, dump, increasing, killSession, sessionPids, sessionPs, tickNumbers, tickValues } from './util.js';

makeSubreaper();

/** The tree fixture, dumped with --leave-running: its PIDs stay taken. */
async function treeDumpedRunning(t: Test) {
  const fx = await startFixture('tree', [], { t });
  const P = fx.pid;
  t.teardown(() => killSession(P));
  const [A, B, G, Z] = (['a', 'b', 'g', 'z'] as const).map((k) => Number(fx.readyInfo[k])) as [number, number, number, number];
  await fx.waitTicks(3);
  const image = `${tmpdir(t)}/image`;
  await dump(P, image, ['--leave-running']);
  return { fx, P, A, B, G, Z, image };
}


t.test('the root PID is in use: restore names it and its holder; the running tree is untouched', async (t) => {
  const fx = await startFixture('tree', [], { t });
  const P = fx.pid;
  t.teardown(() => killSession(P));
  await fx.waitTicks(3);
  const image = `${tmpdir(t)}/image`;
  await dump(P, image, ['--leave-running']);
  await fx.waitTicks(2);
  const ps = sessionPs(P);
  t.equal(ps.length, 5, `the tree runs on after the dump: ${ps.join(' | ')}`);
  const from = fx.lines().length;
  const lastBefore = fx.lastTick();

  const r = await cli(['restore', '-D', image, '-d']);
  t.equal(r.code, 1, 'restore fails (exit 1)');
  t.match(r.stderr, new RegExp(`PID ${P} is in use by tree \\(PPID ${process.pid}\\)`), `it names PID ${P} and its holder: ${r.stderr.trim()}`);

  t.same(sessionPs(P), ps, 'the same processes, parents, groups and session');
  t.equal(fx.child.exitCode, null, 'the root is still the original child');
  await fx.waitTicks(4);
  t.equal(fx.lines().find((l) => l.startsWith('FAIL')), undefined, 'no FAIL');
  t.equal(fx.lines().slice(from).find((l) => l.startsWith('ready')), undefined, 'nothing started again');
  const ticks = tickNumbers(fx.lines());
  t.ok(consecutive(ticks) && ticks.length >= lastBefore + 4, `still ticking: ${ticks.slice(-6).join(' ')}`);
  t.ok(increasing(tickValues(fx.lines(), 'token')), 'the token keeps going round');
});

t.test('only a child PID is in use: restore names that one, and builds nothing', async (t) => {
  const { fx, P, A, B, G, Z, image } = await treeDumpedRunning(t);

  // The root, A and G go (and the zombie with the root); B, in its own group, runs on, now a
  // child of this test, holding its PID.
  for (const pid of [A!, G!]) process.kill(pid, 'SIGKILL');
  fx.child.kill('SIGKILL');
  await fx.exited;
  t.same(await reapPid(Z!), { code: 42, signal: null }, 'the zombie, reparented to us, reaped with its status');
  for (const pid of [A!, G!]) await reapPid(pid);
  t.same(sessionPids(P), [B], `only B (${B}) is left`);
  const holderBefore = fs.readFileSync(`/proc/${B}/stat`, 'utf8');

  const r = await cli(['restore', '-D', image, '-d']);
  t.equal(r.code, 1, 'restore fails (exit 1)');
  t.match(r.stderr, new RegExp(`PID ${B} is in use by tree \\(PPID ${process.pid}\\)`), `it names PID ${B} and its holder: ${r.stderr.trim()}`);
  for (const pid of [P, A!, G!, Z!]) t.notOk(fs.existsSync(`/proc/${pid}`), `PID ${pid} still free: nothing half-built left`);
  const holderAfter = fs.readFileSync(`/proc/${B}/stat`, 'utf8');
  const head = (stat: string) => stat.split(' ').slice(0, 8).join(' '); // pid comm state ppid pgrp session tty tpgid
  t.equal(head(holderAfter), head(holderBefore), `B untouched: ${head(holderAfter)}`);
  t.same(sessionPids(P), [B], 'and still the only one of the session');
});

/** NSpid, NSpgid, NSsid of a process (the innermost namespace's view), and its PPid here. */
function nsIds(hostPid: number): { pid: number; pgid: number; sid: number; ppid: number } {
  const status = fs.readFileSync(`/proc/${hostPid}/status`, 'utf8');
  const last = (key: string) => Number(new RegExp(`^${key}:\\s+(.*)$`, 'm').exec(status)![1]!.trim().split(/\s+/).at(-1));
  return { pid: last('NSpid'), pgid: last('NSpgid'), sid: last('NSsid'), ppid: last('PPid') };
}

t.test('--pid-ns: with its PIDs taken, the tree is restored in a new PID namespace with its own PIDs', async (t) => {
  const { fx, P, A, B, G, Z, image } = await treeDumpedRunning(t);

  const r = await cli(['restore', '-D', image, '--pid-ns', '--json']);
  t.equal(r.code, 0, `restore --pid-ns succeeds: ${r.stderr.trim()}`);
  const end = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((e) => e.event === 'step-end');
  const { pid: hostRoot, 'ns-pid': nsRoot, 'ns-init': init } = end.outputs as Record<string, number>;
  t.teardown(async () => {
    process.kill(init, 'SIGKILL'); // the namespace's init: every process in it goes too
    await reapPid(hostRoot, 3000).catch(() => null);
  });
  t.equal(nsRoot, P, 'in its namespace the root has its original PID');
  t.not(hostRoot, P, `seen from here it has another (${hostRoot})`);

  // The whole tree is there, each with its PID, group and session inside the namespace.
  const hostChildren = (pid: number) =>
    fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const seen = new Map<number, ReturnType<typeof nsIds>>();
  const walk = (host: number) => { seen.set(host, nsIds(host)); for (const c of hostChildren(host)) walk(c); };
  walk(hostRoot);
  const byNsPid = [...seen.values()].map((ids) => ids.pid).sort((a, b) => a - b);
  t.same(byNsPid, [P, A!, B!, G!, Z!].sort((a, b) => a - b), 'P, A, B, G and the zombie Z, with their PIDs');
  for (const ids of seen.values()) {
    t.equal(ids.sid, P, `${ids.pid} in session ${P}`);
    t.equal(ids.pgid, ids.pid === B ? B : P, `${ids.pid} in group ${ids.pid === B ? B : P}`);
  }

  // The original goes; the restored tree carries on writing to the same log.
  await killSession(P);
  const from = fx.lines().length;
  const deadline = Date.now() + 5000;
  while (fx.lines().slice(from).filter((l) => l.startsWith('tick')).length < 4 && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 50));
  }
  const after = fx.lines().slice(from);
  t.ok(after.filter((l) => l.startsWith('tick')).length >= 4, `the restored tree ticks: ${after.slice(-2).join(' | ')}`);
  t.equal(after.find((l) => l.startsWith('FAIL')), undefined, 'no FAIL');
  t.ok(increasing(tickValues(after, 'token')), 'its token keeps going round');
});
