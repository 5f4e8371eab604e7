// `ckpt restore` as users run it: without -d it is the restored process's parent and exits with
// its status; it refuses a PID in use and a damaged image, leaving nothing half-built behind.
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { readStat } from '../../src/sys/proc.js';
import { makeSubreaper, procSnapshot, startFixture, tmpdir } from '../helpers/index.js';
import {
  ckpt, consecutive, dump, exeOf, fileLines, killRestoredAtTeardown, restoreDetached, startProgram, tickNumbers, tickValues, until,
} from './util.js';

makeSubreaper();

const exists = (pid: number) => fs.existsSync(`/proc/${pid}`);

t.test('without -d, ckpt waits for the restored process and exits with its exit code', async (t) => {
  const python = execFileSync('sh', ['-c', 'command -v python3'], { encoding: 'utf8' }).trim();
  const dir = tmpdir(t);
  const log = `${dir}/log`;
  // Waits (in short sleeps) until the file `go` appears, then says so and exits 7.
  const go = `${dir}/go`;
  const code = [
    'import os, sys, time',
    "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)",
    "os.write(fd, b'ready\\n')",
    'while not os.path.exists(sys.argv[2]): time.sleep(0.05)',
    "os.write(fd, b'done\\n')",
    'sys.exit(7)',
  ].join('\n');
  const prog = startProgram(t, python, ['-c', code, log, go], dir);
  await until(() => fileLines(log).includes('ready'), 10_000, 'python to start');
  await dump(prog.pid, `${dir}/image`);
  t.same(await prog.exited, { code: null, signal: 9 }, 'dumped in its sleep, and ended');
  t.same(fileLines(log), ['ready']);

  let restorer: ChildProcess | undefined;
  let parentWhileRunning: number | undefined;
  const running = ckpt(['restore', '-D', `${dir}/image`], (c) => (restorer = c));
  killRestoredAtTeardown(t, prog.pid);
  await until(() => exists(prog.pid) && exeOf(prog.pid) !== undefined, 10_000, `PID ${prog.pid} to be restored`);
  try {
    parentWhileRunning = readStat(prog.pid).ppid;
  } catch {
    // already gone: the ppid check below fails with undefined
  }
  fs.writeFileSync(go, '');
  const run = await running;
  t.equal(parentWhileRunning, restorer!.pid, 'the restored process is ckpt\'s child');
  t.equal(run.code, 7, `ckpt exits with the restored process's code 7\n${run.stderr}`);
  t.same(fileLines(log), ['ready', 'done'], 'it went on waiting after restore, and finished');
  t.notOk(exists(prog.pid), 'ckpt reaped it');
});

t.test('without -d, a restored process killed by a signal: ckpt exits 128 + signal', async (t) => {
  const fx = await startFixture('counter', [], { t });
  await fx.waitTicks(2);
  const dir = `${tmpdir(t)}/image`;
  await dump(fx.pid, dir);
  await fx.exited;
  const running = ckpt(['restore', '-D', dir]);
  killRestoredAtTeardown(t, fx.pid);
  await fx.waitTicks(3);
  process.kill(fx.pid, 'SIGTERM');
  const run = await running;
  t.equal(run.code, 128 + 15, `exit code 143 for SIGTERM\n${run.stderr}`);
  t.notOk(exists(fx.pid), 'ckpt reaped it');
});

t.test('a PID in use is refused, the process holding it untouched', async (t) => {
  const fx = await startFixture('counter', [], { t });
  await fx.waitTicks(2);
  const dir = `${tmpdir(t)}/image`;
  await dump(fx.pid, dir, ['--leave-running']);
  const before = procSnapshot(fx.pid);
  await fx.waitTicks(2);

  const run = await ckpt(['restore', '-D', dir, '-d']);
  t.equal(run.code, 1, 'exit code 1');
  t.match(run.stderr, new RegExp(`PID ${fx.pid} is in use by counter \\(PPID ${process.pid}\\)`), 'says who holds the PID');
  t.notMatch(run.stderr, /\n\s+at /, 'no stack trace');
  t.equal(fx.child.exitCode, null, 'the original still runs');
  await fx.waitTicks(3);
  t.ok(consecutive(tickNumbers(fx.lines())), 'and ticks on without a gap');
  t.equal(procSnapshot(fx.pid).maps, before.maps, 'with its memory map unchanged');

  // The image written with --leave-running restores once the PID is free.
  const lastCounter = tickValues(fx.lines(), 'counter').pop()!;
  await fx.kill();
  const { pid } = await restoreDetached(dir);
  killRestoredAtTeardown(t, pid);
  t.equal(pid, fx.pid);
  const from = fx.lines().length;
  await fx.waitTicks(2);
  const after = tickValues(fx.lines().slice(from), 'counter');
  // The image is from the dump, so the restored counter goes back to what it was then.
  t.ok(after[0]! < lastCounter, `restored from the dump's state: counter ${after[0]} < ${lastCounter} at the kill`);
});

t.test('a damaged copy of an image is refused; the intact one restores', async (t) => {
  const fx = await startFixture('counter', [], { t });
  await fx.waitTicks(3);
  const base = tmpdir(t);
  const intact = `${base}/intact`;
  await dump(fx.pid, intact);
  await fx.exited;

  const damaged = `${base}/damaged`;
  fs.cpSync(intact, damaged, { recursive: true });
  fs.chmodSync(damaged, 0o700);
  const pages = fs.readdirSync(damaged).find((f) => /^pages-\d+\.img$/.test(f));
  t.ok(pages, `the image has a pages file: ${fs.readdirSync(damaged).join(' ')}`);
  const file = path.join(damaged, pages!);
  const bytes = fs.readFileSync(file);
  const at = bytes.length >> 1;
  bytes[at] ^= 0x01;
  fs.writeFileSync(file, bytes);

  const refused = await ckpt(['restore', '-D', damaged, '-d']);
  t.equal(refused.code, 1, 'exit code 1');
  t.match(refused.stderr, new RegExp(pages!.replace('.', '\\.')), `names the damaged file ${pages}`);
  t.notMatch(refused.stderr, /\n\s+at /, 'no stack trace');
  t.notOk(exists(fx.pid), `PID ${fx.pid} is not taken: nothing half-restored`);

  const { pid } = await restoreDetached(intact);
  killRestoredAtTeardown(t, pid);
  t.equal(pid, fx.pid, 'the intact image restores');
  await fx.waitTicks(3);
  t.ok(consecutive(tickNumbers(fx.lines())), 'and ticks on from where it was dumped');
});
