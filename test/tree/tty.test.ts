// Terminals: a pty pair inside the tree (the slave a child's controlling terminal) comes back
// with the same index, termios, window size, packet mode and foreground group; a shell job (its
// terminal outside the tree) is refused without --shell-job and, with it, restored onto the
// terminal of the ckpt that restores it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { readStat } from '../../src/sys/proc.js';
import { ptyIndex, setPtyLocked } from '../../src/sys/tty.js';
import { fixture, killAndReap, makeSubreaper, packageRoot, startFixture, tmpdir, trackChildProcess, type Teardown } from '../helpers/index.js';
import { userEnv } from '../runner/helpers.js';
import { cli, dump, killSession, reapAll, restoreDetached, tickValues } from './util.js';

makeSubreaper();

const O_NOCTTY = 0o400;
const O_NONBLOCK = 0o4000;
const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
const jobLeader = path.join(packageRoot, 'test', 'tree', 'jobleader.py');
const ckptBin = path.join(packageRoot, 'bin', 'ckpt.js');

/** Opens /dev/ptmx until pty `index` is this process's; returns every master opened. */
function takePty(index: number): number[] {
  const fds: number[] = [];
  for (;;) {
    const fd = fs.openSync('/dev/ptmx', fs.constants.O_RDWR | O_NOCTTY);
    fds.push(fd);
    const got = ptyIndex(fd);
    if (got === index) return fds;
    if (got > index) {
      fds.forEach((f) => fs.closeSync(f));
      throw new Error(`pty ${index} is taken by another process`);
    }
  }
}

/** The tty fixture (P holds the master, its child C leads a session on pty N); both ended at teardown. */
async function startPtyTree(t: Teardown, args: string[]) {
  const fx = await startFixture('tty', args, { t });
  const P = fx.pid;
  const C = Number(fx.readyInfo.child);
  const N = Number(fx.readyInfo.pts);
  t.teardown(async () => {
    await killSession(P);
    await killSession(C);
  });
  return { fx, P, C, N };
}

/** The last "child state" line's words after "lines=N". */
const childState = (lines: string[]) => lines.filter((l) => l.startsWith('child state ')).map((l) => l.split(' ').slice(3).join(' '));

t.test('a pty pair inside the tree, the slave a child\'s controlling terminal', async (t) => {
  const { fx, P, C, N } = await startPtyTree(t, []);
  await fx.waitForLine(/^child state lines=20 /);
  await fx.waitTicks(2);
  const before = readStat(C);
  t.equal(before.tty_nr, (136 << 8) | N, `the child's controlling terminal is /dev/pts/${N}`);
  t.equal(before.tpgid, C, 'its group is the foreground group');
  const stateBefore = childState(fx.lines()).at(-1)!;
  t.match(stateBefore, new RegExp(`^tty=/dev/pts/${N} fg=${C} pgrp=${C} sid=${C} termios=[0-9a-f]+ winsize=37x123\\+5x7$`),
    'the child sees its terminal as it set it');
  const echoedBefore = tickValues(fx.lines(), 'echoed').at(-1)!;

  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  await reapAll([C]);
  t.notOk(fs.existsSync(`/dev/pts/${N}`), `/dev/pts/${N} went with the tree`);
  const shown = await cli(['show', image]);
  t.match(shown.stdout, new RegExp(`pty ${N} master /dev/ptmx 37x123 packet mode`), 'show lists the master');
  t.match(shown.stdout, new RegExp(`pty ${N} slave /dev/pts/${N}`), 'and the slave');
  t.match(shown.stdout, new RegExp(`${C} ppid ${P} pgid ${C} sid ${C} ctty \\[\\d+\\] foreground ${C}`), 'and the child\'s terminal');

  // While something else holds pty N the restore is refused before anything is made.
  const taken = takePty(N);
  const refused = await cli(['restore', '-D', image, '-d']);
  taken.forEach((fd) => fs.closeSync(fd));
  t.not(refused.code, 0, `a restore while pty ${N} is taken fails`);
  t.match(refused.stderr, new RegExp(`pty ${N} is in use`), `saying so: ${refused.stderr}`);
  t.notOk(fs.existsSync(`/proc/${P}`), 'nothing restored');

  t.equal(await restoreDetached(image), P, 'restored');
  t.ok(fs.existsSync(`/dev/pts/${N}`), `/dev/pts/${N} is back`);
  const from = fx.lines().length;
  // Twenty more lines answered by the child: the pair carries data both ways again.
  const line = await fx.waitForLine(/^child state /, 5000, from);
  await fx.waitTicks(5);
  const after = readStat(C);
  t.equal(after.tty_nr, before.tty_nr, 'the child\'s controlling terminal is the same pty');
  t.equal(after.tpgid, C, 'its group is the foreground group again');
  t.equal(after.session, C, 'it leads its session');
  t.equal(line.split(' ').slice(3).join(' '), stateBefore, 'termios, window size, foreground group as the child sees them: as before');
  const echoed = tickValues(fx.lines().slice(from), 'echoed');
  t.ok(echoed.at(-1)! > echoedBefore + 3, `the parent gets answers again: ${echoedBefore} before, ${echoed.join(' ')} after`);
  t.notOk(fx.lines().some((l) => l.startsWith('FAIL')), 'no FAIL');
});

t.test('a controlling terminal no descriptor of the session holds', async (t) => {
  const { fx, P, C, N } = await startPtyTree(t, ['ctty-only']);
  await fx.waitForLine(/^child state lines=0 /);
  await fx.waitTicks(2);
  const before = readStat(C);
  t.equal(before.tty_nr, (136 << 8) | N, `the child's controlling terminal is /dev/pts/${N}`);
  t.notOk(fs.readdirSync(`/proc/${C}/fd`).some((fd) => fs.readlinkSync(`/proc/${C}/fd/${fd}`) === `/dev/pts/${N}`), 'which it holds no descriptor of');
  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  await reapAll([C]);
  const shown = await cli(['show', image]);
  t.match(shown.stdout, new RegExp(`${C} ppid ${P} pgid ${C} sid ${C} ctty \\[\\d+\\] foreground ${C}`), 'the image has the child\'s terminal');
  t.equal(await restoreDetached(image), P, 'restored');
  await fx.waitTicks(3);
  const after = readStat(C);
  t.equal(after.tty_nr, before.tty_nr, 'the child\'s controlling terminal is the same pty');
  t.equal(after.tpgid, C, 'its group the foreground group');
  t.notOk(fs.readdirSync(`/proc/${C}/fd`).some((fd) => fs.readlinkSync(`/proc/${C}/fd/${fd}`).startsWith('/dev/pts/')), 'and it holds no descriptor of it');
});

t.test('/dev/tty of a process whose controlling terminal is a pty of the tree', async (t) => {
  const { fx, P, C, N } = await startPtyTree(t, ['devtty']);
  await fx.waitForLine(/^child state lines=20 /);
  const stateBefore = childState(fx.lines()).at(-1)!;
  t.match(stateBefore, new RegExp(`^tty=/dev/tty fg=${C} `), 'the child talks through /dev/tty');
  const echoedBefore = tickValues(fx.lines(), 'echoed').at(-1)!;
  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  await reapAll([C]);
  t.match((await cli(['show', image])).stdout, new RegExp(`pty ${N} slave /dev/pts/${N}`), 'recorded as the slave of the pty');
  t.equal(await restoreDetached(image), P, 'restored');
  const from = fx.lines().length;
  const line = await fx.waitForLine(/^child state /, 5000, from);
  await fx.waitTicks(3);
  t.equal(line.split(' ').slice(3).join(' '), stateBefore.replace('tty=/dev/tty', `tty=/dev/pts/${N}`),
    `the same terminal, now opened as /dev/pts/${N}`);
  t.ok(tickValues(fx.lines().slice(from), 'echoed').at(-1)! > echoedBefore, 'the child answers through it');
  t.equal(readStat(C).tty_nr, (136 << 8) | N, 'and it is its controlling terminal');
});

t.test('a dump with --leave-running leaves the pty pair working', async (t) => {
  const { fx, P, C } = await startPtyTree(t, []);
  await fx.waitTicks(5);
  await dump(P, `${tmpdir(t)}/image`, ['--leave-running']);
  const echoedAtDump = tickValues(fx.lines(), 'echoed').at(-1)!;
  await fx.waitTicks(10);
  const echoed = tickValues(fx.lines(), 'echoed');
  t.ok(echoed.at(-1)! > echoedAtDump + 5, `answers go on: ${echoedAtDump} at the dump, ${echoed.at(-1)} now`);
  t.equal(tickValues(fx.lines(), 'garbled').at(-1), 0, 'nothing written through the pair was lost');
  t.equal(readStat(C).tpgid, C, 'the child is still in the foreground of its terminal');
});

t.test('a session leader whose terminal is outside the dumped tree: refused before any memory is copied', async (t) => {
  const { fx, C, N } = await startPtyTree(t, []);
  await fx.waitTicks(3);
  // The child alone: its terminal's master stays with its parent, outside what is dumped.
  const dir = `${tmpdir(t)}/image`;
  const run = await cli(['dump', '-t', String(C), '-D', dir, '--shell-job', '--json']);
  t.not(run.code, 0, 'the dump fails');
  t.match(run.stderr, new RegExp(`process ${C} leads a session whose controlling terminal /dev/pts/${N} is outside the dumped tree`),
    'naming the process and its terminal');
  const events = run.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { event: string }).event);
  t.notOk(events.includes('progress'), `no page was copied first (events: ${[...new Set(events)].join(', ')})`);
  t.notOk(fs.existsSync(dir), 'no image left');
  const from = fx.lines().length;
  await fx.waitTicks(3);
  t.notOk(fx.lines().slice(from).some((l) => l.startsWith('FAIL')), 'the pair goes on working');
  t.equal(readStat(C).tpgid, C, 'the child is still the foreground of its terminal');
});

t.test('bytes in flight inside a pty: the dump warns and leaves them in place', async (t) => {
  const fx = await startFixture('tty', ['inflight'], { t });
  const N = fx.readyInfo.pts;
  await fx.waitTicks(2);
  t.match(fx.lines().at(-1)!, /slave_unread=9 master_unread=9$/, 'nine bytes wait at each side');
  const run = await dump(fx.pid, `${tmpdir(t)}/image`, ['--leave-running']);
  t.match(run.stdout + run.stderr, new RegExp(`warning: pty ${N} .*9 bytes written to the master and 9 written to the slave were not read yet`),
    'the dump says they are not in the image');
  await fx.waitTicks(2);
  t.match(fx.lines().at(-1)!, /slave_unread=9 master_unread=9$/, 'and they still wait, untouched');
});

/** A pty made by this test: its master (non-blocking), read all along into `output`. */
interface TestPty { master: number; slave: string; output(): string; close(): void }

function openPty(t: Teardown): TestPty {
  const master = fs.openSync('/dev/ptmx', fs.constants.O_RDWR | O_NOCTTY | O_NONBLOCK);
  setPtyLocked(master, false);
  const slave = `/dev/pts/${ptyIndex(master)}`;
  let out = '';
  const buf = Buffer.alloc(4096);
  const drain = () => {
    for (;;) {
      try {
        const n = fs.readSync(master, buf);
        if (n <= 0) return;
        out += buf.toString('latin1', 0, n);
      } catch {
        return; // EAGAIN: nothing more now; EIO: no slave open
      }
    }
  };
  const timer = setInterval(drain, 10);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    fs.closeSync(master);
  };
  t.teardown(close);
  return { master, slave, output: () => (drain(), out), close };
}

/** python3 jobleader.py: `argv` as the foreground job of a new session on `slave`. */
function startJob(t: Teardown, slave: string, argv: string[]): { leader: ChildProcess; status: string } {
  const status = path.join(tmpdir(t), 'status');
  const leader = spawn(python, [jobLeader, slave, status, ...argv], { stdio: 'ignore', env: userEnv() });
  const exited = trackChildProcess(leader);
  t.teardown(async () => {
    leader.kill('SIGKILL');
    await exited;
  });
  return { leader, status };
}

async function until<T>(what: string, get: () => T | undefined, timeoutMs = 10000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const readIfThere = (file: string) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined);
const logLines = (log: string) => (readIfThere(log) ?? '').split('\n').filter((l) => l !== '');
const lastTick = (log: string) => Number(/^tick (\d+) ok/.exec(logLines(log).filter((l) => l.startsWith('tick ')).at(-1) ?? '')?.[1] ?? 0);

async function waitTicks(log: string, k: number): Promise<void> {
  const target = lastTick(log) + k;
  await until(`tick ${target} in ${log}`, () => {
    const fail = logLines(log).find((l) => l.startsWith('FAIL'));
    if (fail) throw new Error(fail);
    return lastTick(log) >= target ? true : undefined;
  });
}

t.test('a shell job: refused without --shell-job, restored onto ckpt\'s terminal with it', async (t) => {
  const dir = tmpdir(t);
  const log = path.join(dir, 'job.log');
  const ptyA = openPty(t);
  const jobA = startJob(t, ptyA.slave, [fixture('tty'), log, 'job']);
  const ready = await until('ready line', () => logLines(log).find((l) => l.startsWith('ready ')));
  const P = Number(/pid=(\d+)/.exec(ready)![1]);
  t.teardown(() => killAndReap(P));
  t.equal(ready, `ready pid=${P} pgrp=${P} tty=${ptyA.slave}`, 'the job leads its group, on the test\'s terminal');
  await waitTicks(log, 3);
  t.match(logLines(log).at(-1)!, new RegExp(`^tick \\d+ ok fg=1 tty=${ptyA.slave}$`), 'in the foreground');
  t.match(ptyA.output(), /tick 3\r\n/, 'writing to its terminal (which turns \\n into \\r\\n)');
  const st = readStat(P);
  t.equal(st.session, jobA.leader.pid, 'its session is the job leader\'s, outside the tree');

  const image = path.join(dir, 'image');
  const refused = await cli(['dump', '-t', String(P), '-D', image]);
  t.not(refused.code, 0, 'a dump without --shell-job fails');
  t.match(refused.stderr, new RegExp(`unsupported fd 0: terminal ${ptyA.slave} in process ${P} is outside the dumped tree.*use --shell-job`),
    `it names the fd, the terminal, the process and --shell-job: ${refused.stderr}`);
  t.notOk(fs.existsSync(image), 'no image left');
  const tickAtRefusal = lastTick(log);
  await waitTicks(log, 3);
  t.ok(lastTick(log) > tickAtRefusal, 'the job runs on');

  await dump(P, image, ['--shell-job']);
  t.equal(await until('job A status', () => readIfThere(jobA.status)), 'signal 9\n', 'the dump ended the job');
  const shown = await cli(['show', image]);
  t.match(shown.stdout, new RegExp(`terminal ${ptyA.slave} \\(136:\\d+\\) outside the tree`), 'show lists the external terminal');
  t.match(shown.stdout, /\(foreground of its terminal\)/, 'and that the job was in the foreground');

  const restoredWithout = await cli(['restore', '-D', image, '-d']);
  t.not(restoredWithout.code, 0, 'a restore without --shell-job fails');
  t.match(restoredWithout.stderr, /shell job.*restore it with --shell-job/, `and says why: ${restoredWithout.stderr}`);
  t.notOk(fs.existsSync(`/proc/${P}`), 'nothing restored');

  // ckpt runs as the foreground job of another terminal, as from a shell there.
  const ptyB = openPty(t);
  const linesBefore = logLines(log).length;
  const jobB = startJob(t, ptyB.slave, [process.execPath, ckptBin, 'restore', '-D', image, '-d', '--shell-job']);
  const status = await until('ckpt restore', () => readIfThere(jobB.status), 30000);
  t.equal(status, 'exit 0\n', `ckpt restore --shell-job exits 0; its terminal shows:\n${ptyB.output().slice(-300)}`);
  await waitTicks(log, 5);
  const after = logLines(log).slice(linesBefore).filter((l) => l.startsWith('tick '));
  t.ok(after.length >= 5 && after.every((l) => l.endsWith(`fg=1 tty=${ptyB.slave}`)),
    `on ckpt's terminal, in its foreground: ${after.slice(-2).join(' | ')}`);
  const last = lastTick(log);
  await until(`tick ${last} on the terminal`, () => (ptyB.output().includes(`tick ${last}\r\n`) ? true : undefined));
  t.pass(`the restored job writes to ckpt's terminal (tick ${last})`);
  const now = readStat(P);
  t.equal(now.session, jobB.leader.pid, 'it is in ckpt\'s session');
  t.equal(now.pgrp, P, 'it leads its own group again');
  t.equal(now.tpgid, P, 'which is the foreground group of the terminal');
  t.equal(now.tty_nr, fs.statSync(ptyB.slave).rdev, 'its controlling terminal is ckpt\'s');
});
