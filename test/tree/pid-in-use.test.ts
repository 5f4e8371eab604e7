// Restoring a tree whose PIDs are taken. `restore --pid-ns` (a new PID namespace) is not
// implemented yet; until it is, restore must refuse with the PID and its holder, and leave
// the holders alone.
import fs from 'node:fs';
import t from 'tap';
import { makeSubreaper, reapPid, startFixture, tmpdir } from '../helpers/index.js';
import { cli, consecutive, dump, increasing, killSession, sessionPids, sessionPs, tickNumbers, tickValues } from './util.js';

makeSubreaper();

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
  const fx = await startFixture('tree', [], { t });
  const P = fx.pid;
  t.teardown(() => killSession(P));
  const [A, B, G, Z] = (['a', 'b', 'g', 'z'] as const).map((k) => Number(fx.readyInfo[k]));
  await fx.waitTicks(3);
  const image = `${tmpdir(t)}/image`;
  await dump(P, image, ['--leave-running']);

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
