// The C fixtures and the helpers that run them: every fixture starts, ticks and dies cleanly.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import t from 'tap';
import { readStat } from '../src/sys/proc.js';
import { fixture, freePort, killAndReap, makeSubreaper, procSnapshot, reapPid, startFixture, tmpdir } from './helpers/index.js';

makeSubreaper();

const ticks = (lines: string[], key: string) =>
  lines.flatMap((l) => {
    const m = new RegExp(`^tick \\d+ ok .*\\b${key}=(\\d+)`).exec(l);
    return m ? [Number(m[1])] : [];
  });

t.test('mem: ticks, full check on SIGUSR1', async (t) => {
  const fx = await startFixture('mem', ['--stack'], { t });
  t.match(fx.ready, new RegExp(`^ready pid=${fx.pid} big=0x`));
  t.equal(fx.pid, fx.child.pid);
  await fx.waitTicks(3);
  const from = fx.lines().length;
  process.kill(fx.pid, 'SIGUSR1');
  t.equal(await fx.waitForLine(/^full ok/, 5000, from), 'full ok untouched_resident=0 sparse_resident=64');
  await fx.waitTicks(1);
});

t.test('filemap', async (t) => {
  const fx = await startFixture('filemap', (dir) => [dir], { t });
  t.equal(fx.readyInfo.file, `${fx.dir}/filemap.dat`);
  t.equal(fs.statSync(fx.readyInfo.file!).size, 8 << 20);
  await fx.waitTicks(3);
});

t.test('signals: handlers, timers, pending signals', async (t) => {
  const fx = await startFixture('signals', [], { t });
  process.kill(fx.pid, 'SIGUSR1');
  await fx.waitForLine(/^usr1 1$/);
  process.kill(fx.pid, 'SIGUSR2');
  await fx.waitForLine(/^usr2 1$/);
  await fx.waitTicks(8);
  const alarms = ticks(fx.lines(), 'alarms');
  const timer = ticks(fx.lines(), 'timer');
  t.ok(alarms[alarms.length - 1]! > alarms[0]!, `ITIMER_REAL fires: ${alarms.join(' ')}`);
  t.ok(timer[timer.length - 1]! > timer[0]!, `POSIX timer fires: ${timer.join(' ')}`);
});

t.test('signals --sleep: one long nanosleep, then ticks', async (t) => {
  const fx = await startFixture('signals', ['--sleep', '1'], { t });
  const slept = await fx.waitForLine(/^slept ok/, 3000);
  t.ok(Number(/elapsed=(\d+)/.exec(slept)![1]) >= 1000, slept);
  await fx.waitTicks(2);
});

t.test('files', async (t) => {
  const fx = await startFixture('files', (dir) => [dir], { t });
  await fx.waitTicks(3);
  t.match(fs.readFileSync(`${fx.dir}/c`, 'utf8'), /^c 1\nc 2\nc 3\n/);
  const snap = procSnapshot(fx.pid);
  const fd = (n: string) => snap.fds.find((l) => l.startsWith(`${fx.readyInfo[n]} -> `));
  t.equal(fd('a'), `${fx.readyInfo.a} -> ${fx.dir}/a flags=0o100002 pos=1234`);
  t.equal(fd('dup'), `100 -> ${fx.dir}/a flags=0o100002 pos=1234`);
  t.equal(fd('b'), `${fx.readyInfo.b} -> ${fx.dir}/b flags=0o2100000 pos=4096`);
  t.equal(fd('d'), `${fx.readyInfo.d} -> ${fx.dir}/d (deleted) flags=0o100002 pos=5000`);
  t.ok(snap.fds[3]!.startsWith(`3 -> ${fx.log} flags=0o102001 pos=`), 'the log is fd 3');
  t.match(snap.maps, /\[stack\]/);
});

t.test('counter and counter --alloc', async (t) => {
  const plain = await startFixture('counter', [], { t });
  const alloc = await startFixture('counter', ['--sleep-ms', '5', '--alloc', '64'], { t });
  await Promise.all([plain.waitTicks(3), alloc.waitTicks(3)]);
  const counts = ticks(plain.lines(), 'counter');
  t.ok(counts.every((c, i) => i === 0 || c > counts[i - 1]!), `counter grows: ${counts.join(' ')}`);
  t.match(alloc.ready, /alloc=0x[0-9a-f]+/);
});

t.test('unsupported', async (t) => {
  const fx = await startFixture('unsupported', [], { t });
  await fx.waitTicks(3);
  t.match(fx.ready, /pipe_r=4 pipe_w=5 socket=6 peer=7 io_uring=8/);
});

t.test('udp: echo servers answer their clients', async (t) => {
  const port = await freePort();
  const fx = await startFixture('udp', [String(port)], { t });
  t.match(fx.ready, new RegExp(`^ready pid=${fx.pid} srvfd=\\d+ sentfd=\\d+ port=${port} port6=\\d+ `));
  await fx.waitTicks(3);
  const echoed = ticks(fx.lines(), 'echoed');
  t.ok(echoed.at(-1)! >= 2, `the client's pings come back: ${echoed.join(' ')}`);
});

t.test('tty: a pty pair, the child answering through it', async (t) => {
  const fx = await startFixture('tty', [], { t });
  const child = Number(fx.readyInfo.child);
  t.match(fx.ready, new RegExp(`^ready pid=${fx.pid} child=\\d+ pts=\\d+$`));
  await fx.waitForLine(/^child state lines=20 tty=\/dev\/pts\/\d+ fg=(\d+) pgrp=\1 sid=\1 /);
  t.ok(ticks(fx.lines(), 'echoed').at(-1)! > 10, 'answers come back');
  await fx.kill();
  // With the master gone the child reads an error and ends: reparented to us, reaped here.
  await reapPid(child);
});

t.test('fixtures carry on after a long stop', async (t) => {
  const fxs = await Promise.all([
    startFixture('signals', [], { t }),
    startFixture('mem', [], { t }),
    startFixture('files', (dir) => [dir], { t }),
  ]);
  for (const fx of fxs) process.kill(fx.pid, 'SIGSTOP');
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const fx of fxs) process.kill(fx.pid, 'SIGCONT');
  await Promise.all(fxs.map((fx) => fx.waitTicks(3)));
  t.pass('still ticking');
});

t.test('kill waits until Node reaped the child; killAndReap works on it too', async (t) => {
  const a = await startFixture('counter', [], { t });
  t.same(await a.kill(), { code: null, signal: 9 });
  t.throws(() => readStat(a.pid), { name: 'ProcError', code: 'ENOENT' }, 'PID is free');
  const b = await startFixture('counter', [], { t });
  t.same(await killAndReap(b.pid), { code: null, signal: 9 });
  t.same(await b.exited, { code: null, signal: 9 });
});

t.test('a FAIL line rejects the wait with it', async (t) => {
  const fx = await startFixture('counter', [], { t });
  fs.appendFileSync(fx.log, 'FAIL injected by the test\n');
  await t.rejects(fx.waitForLine(/never/), /fixture failed: FAIL injected by the test/);
});

t.test('reapPid reaps an orphan reparented to this subreaper', async (t) => {
  const dir = tmpdir(t);
  const shell = spawn('sh', ['-c', `${fixture('counter')} ${dir}/log & echo $!`], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  shell.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((resolve) => shell.once('exit', resolve));
  const pid = Number(out.trim());
  t.equal(readStat(pid).ppid, process.pid, 'reparented to us');
  t.same(await killAndReap(pid), { code: null, signal: 9 });
  t.throws(() => readStat(pid), { name: 'ProcError', code: 'ENOENT' }, 'reaped, PID free');
  t.equal(await reapPid(pid, 100), null, 'gone already');
});
