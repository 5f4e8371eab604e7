import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import koffi from 'koffi';
import t from 'tap';
import {
  PM_EXCLUSIVE,
  PM_FILE,
  PM_PRESENT,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
  ProcError,
  RLIM_INFINITY,
  listChildren,
  listFds,
  listThreads,
  openPagemap,
  readAuxv,
  readAuxvRaw,
  readCmdline,
  readComm,
  readCwdLink,
  readExeLink,
  readFdLink,
  readFdinfo,
  readLimits,
  readMapFilesLink,
  readMaps,
  readPagemap,
  readRootLink,
  readSmaps,
  readStat,
  readStatus,
  readTimers,
} from '../../src/sys/proc.js';
import { startFixture, tmpdir, trackChildProcess, type Teardown } from '../helpers/index.js';

const PAGE = 4096n;
const AT_PAGESZ = 6n;
const O_APPEND = 0o2000;
const O_ACCMODE = 3;
const O_WRONLY = 1;

/** A `sleep 30` child, named `comm`, run from `cwd`, killed at teardown. */
async function sleeper(tt: Teardown, comm: string, cwd: string): Promise<number> {
  const link = path.join(cwd, comm);
  fs.symlinkSync('/bin/sleep', link);
  const child = spawn(link, ['30'], { stdio: 'ignore', cwd });
  const exited = trackChildProcess(child);
  tt.teardown(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  // Wait until the exec has happened and sleep sleeps, so /proc shows a settled sleep, not node.
  const pid = child.pid!;
  const settled = () => readComm(pid) === comm.slice(0, 15) && readStat(pid).state === 'S';
  for (let i = 0; i < 500 && !settled(); i++) await new Promise((r) => setTimeout(r, 5));
  return pid;
}

t.test('stat of this process and its threads', async (t) => {
  const st = readStat(process.pid);
  t.equal(st.pid, process.pid);
  t.equal(st.comm, readComm(process.pid));
  t.equal(st.state, 'R');
  t.equal(st.ppid, process.ppid);
  t.ok(st.num_threads >= 1);
  t.ok(st.starttime > 0n);
  t.ok(st.start_code > 0n && st.start_code < st.end_code, 'code range');
  t.ok(st.start_brk > 0n, 'start_brk');
  t.ok(st.arg_start < st.arg_end && st.env_start < st.env_end, 'arg and env ranges');
  const stack = readMaps(process.pid).find((m) => m.path === '[stack]')!;
  t.ok(stack.start <= st.start_stack && st.start_stack < st.arg_start && st.env_end <= stack.end, 'stack layout');
  t.equal(st.exit_code, 0);
  for (const tid of listThreads(process.pid)) {
    const ts = readStat(process.pid, tid);
    t.equal(ts.pid, tid, `thread ${tid}`);
    t.equal(ts.session, st.session);
  }
});

t.test('stat comm with spaces and parentheses', async (t) => {
  const dir = tmpdir(t);
  const pid = await sleeper(t, 'a) b (c) d', dir);
  const st = readStat(pid);
  t.equal(st.comm, 'a) b (c) d');
  t.equal(st.ppid, process.pid);
  t.equal(st.state, 'S');
  t.equal(st.num_threads, 1);
  t.equal(readStatus(pid).name, 'a) b (c) d');
});

t.test('status of this process', async (t) => {
  const st = readStatus(process.pid);
  t.same(st.uid, [0, 0, 0, 0]);
  t.same(st.gid, [0, 0, 0, 0]);
  t.equal(st.tgid, process.pid);
  t.equal(st.pid, process.pid);
  t.equal(st.ppid, process.ppid);
  t.equal(st.tracerPid, 0);
  t.equal(st.state, 'R');
  t.equal(st.name, readComm(process.pid));
  t.equal(st.umask, process.umask());
  t.equal(st.threads, listThreads(process.pid).length);
  t.equal(st.nsPid[st.nsPid.length - 1], process.pid);
  t.equal(st.nsTgid[st.nsTgid.length - 1], process.pid);
  t.type(st.sigBlk, 'bigint');
  t.ok(st.capEff !== 0n, 'root has capabilities');
  t.ok(st.sigQ.limit > 0);
  t.equal(st.noNewPrivs, false);
  t.ok(st.fields.VmRSS?.endsWith('kB'));
  const tid = listThreads(process.pid).find((x) => x !== process.pid);
  if (tid !== undefined) t.equal(readStatus(process.pid, tid).pid, tid, 'per-thread status');
});

t.test('maps and smaps', async (t) => {
  const maps = readMaps(process.pid);
  const paths = maps.map((m) => m.path);
  for (const name of ['[stack]', '[vdso]', '[vvar]', '[heap]', '[vsyscall]']) t.ok(paths.includes(name), name);
  t.ok(paths.includes(fs.realpathSync(process.execPath)), 'the node binary');
  const bad = maps.filter((m, i) => {
    const prot = (m.perms[0] === 'r' ? PROT_READ : 0) | (m.perms[1] === 'w' ? PROT_WRITE : 0) | (m.perms[2] === 'x' ? PROT_EXEC : 0);
    return !(
      m.start < m.end && (i === 0 || maps[i - 1]!.end <= m.start) && m.prot === prot && m.shared === (m.perms[3] === 's') &&
      m.dev === `${m.major.toString(16).padStart(2, '0')}:${m.minor.toString(16).padStart(2, '0')}`
    );
  });
  t.same(bad, [], 'ascending ranges, prot and dev consistent with the text');
  const vdso = maps.find((m) => m.path === '[vdso]')!;
  t.equal(vdso.prot, PROT_READ | PROT_EXEC);
  t.equal(vdso.inode, 0);

  const dir = tmpdir(t);
  const pid = await sleeper(t, 'sleep', dir);
  const sm = readSmaps(pid);
  t.same(sm.map((e) => [e.start, e.end, e.path]), readMaps(pid).map((e) => [e.start, e.end, e.path]), 'smaps has the maps entries');
  const stack = sm.find((e) => e.path === '[stack]')!;
  t.ok(stack.vmFlags.includes('rd') && stack.vmFlags.includes('wr') && stack.vmFlags.includes('gd'), 'stack flags');
  t.ok(stack.rss > 0 && stack.anonymous > 0, 'stack pages');
  t.equal(stack.size, Number((stack.end - stack.start) / 1024n));
  t.equal(stack.swap, 0);
  t.type(stack.kb.Pss, 'number');
  t.ok('THPeligible' in stack.other);
  const exe = sm.find((e) => e.path === '/usr/bin/sleep' || e.path === '/bin/sleep')!;
  t.ok(exe.vmFlags.includes('mr'), 'exe mapping');
  t.ok(exe.inode > 0);
  t.equal(readMapFilesLink(pid, exe.start, exe.end), readExeLink(pid));
});

t.test('maps of a file mapped four ways; pagemap of them', async (t) => {
  const fx = await startFixture('filemap', (dir) => [dir], { t });
  const file = path.join(fx.dir, 'filemap.dat');
  const maps = readMaps(fx.pid);
  const at = (key: string) => maps.find((m) => m.start === BigInt(fx.readyInfo[key]!))!;
  t.match(at('ro'), { path: file, perms: 'r--p', shared: false, deleted: false, offset: 0n });
  t.match(at('cow'), { path: file, perms: 'rw-p', shared: false });
  t.match(at('shared'), { path: file, perms: 'rw-s', shared: true });
  t.match(at('shanon'), { path: '/dev/zero', perms: 'rw-s', shared: true, deleted: true });
  t.equal(at('ro').inode, fs.statSync(file).ino);

  const pm = openPagemap(fx.pid);
  t.teardown(() => pm.close());
  const ro = at('ro');
  const roPages = pm.read(ro.start, ro.end);
  t.equal(roPages.length, Number((ro.end - ro.start) / PAGE));
  t.ok(roPages.every((e) => (e & PM_PRESENT) !== 0n && (e & PM_FILE) !== 0n), 'read file pages are present file pages');
  const cow = at('cow');
  const cowPages = pm.read(cow.start, cow.end).slice();
  for (const page of [3, 100, 1000, 2047]) {
    const e = cowPages[page]!;
    t.ok((e & PM_PRESENT) !== 0n && (e & PM_FILE) === 0n && (e & PM_EXCLUSIVE) !== 0n, `cow page ${page} is private`);
  }
  t.ok((cowPages[4]! & PM_FILE) !== 0n, 'an unmodified cow page is still the file');
});

t.test('pagemap of this process and of the mem fixture', async (t) => {
  const buf = Buffer.alloc(1 << 20, 0x5a);
  const addr = koffi.address(buf);
  const start = (addr + PAGE - 1n) & ~(PAGE - 1n);
  const end = (addr + BigInt(buf.length)) & ~(PAGE - 1n);
  const entries = readPagemap(process.pid, start, end);
  t.equal(entries.length, Number((end - start) / PAGE));
  t.ok(entries.every((e) => (e & PM_PRESENT) !== 0n), 'a touched Buffer is present');

  const fx = await startFixture('mem', [], { t });
  const info = fx.readyInfo;
  const MiB = 1n << 20n;
  const pm = openPagemap(fx.pid);
  t.teardown(() => pm.close());
  const count = (a: BigUint64Array) => a.reduce((n, e) => n + ((e & PM_PRESENT) !== 0n ? 1 : 0), 0);
  const big = BigInt(info.big!);
  t.equal(count(pm.read(big, big + 64n * MiB)), 16384, 'all of big');
  const untouched = BigInt(info.untouched!);
  t.equal(count(pm.read(untouched, untouched + 16n * MiB)), 0, 'none of untouched');
  const sparse = BigInt(info.sparse!);
  const own = new BigUint64Array(16384);
  const view = pm.read(sparse, sparse + 64n * MiB, own);
  t.equal(view.buffer, own.buffer, 'reads into the given buffer');
  t.equal(count(view), 64, 'one page per MiB of sparse');
  t.ok((view[256]! & PM_PRESENT) !== 0n && (view[257]! & PM_PRESENT) === 0n);

  const vsyscall = readMaps(fx.pid).find((m) => m.path === '[vsyscall]')!;
  t.same([...pm.read(vsyscall.start, vsyscall.end)], [0n], 'beyond the task size reads as nothing');
  t.throws(() => pm.read(1n, PAGE), ProcError);
});

t.test('fds, fdinfo and links', async (t) => {
  const fds = listFds(process.pid);
  t.ok([0, 1, 2].every((fd) => fds.includes(fd)), 'stdio');
  t.same(fds, [...fds].sort((a, b) => a - b), 'sorted');

  const dir = tmpdir(t);
  const file = path.join(dir, 'x');
  fs.writeFileSync(file, 'x'.repeat(5000));
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_APPEND);
  t.teardown(() => fs.closeSync(fd));
  fs.writeSync(fd, 'more');
  const info = readFdinfo(process.pid, fd);
  t.equal(info.pos, 5004n);
  t.equal(info.flags & O_ACCMODE, O_WRONLY);
  t.ok(info.flags & O_APPEND, 'O_APPEND');
  t.equal(info.ino, fs.statSync(file).ino);
  t.ok(info.mntId > 0);
  t.equal(readFdLink(process.pid, fd), file);
  fs.unlinkSync(file);
  t.equal(readFdLink(process.pid, fd), `${file} (deleted)`);

  const fx = await startFixture('anonfds', [], { t });
  const efd = Number(fx.readyInfo.eventfd);
  t.equal(readFdLink(fx.pid, efd), 'anon_inode:[eventfd]');
  t.match(readFdinfo(fx.pid, efd).extra, { 'eventfd-count': /^[0-9a-f]+$/ });
  t.match(readFdLink(fx.pid, Number(fx.readyInfo.pipe_r)), /^pipe:\[\d+\]$/);
  t.same(listFds(fx.pid), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  t.equal(readFdLink(fx.pid, 0), '/dev/null');
  t.equal(readFdLink(fx.pid, 3), fx.log);

  const epolls = listFds(process.pid).filter((n) => {
    try {
      return readFdLink(process.pid, n) === 'anon_inode:[eventpoll]';
    } catch {
      return false; // closed meanwhile
    }
  });
  const lines = epolls.flatMap((n) => readFdinfo(process.pid, n).lines);
  t.ok(lines.length > 0 && lines.every((l) => /^tfd: +\d+ events:/.test(l)), "libuv's epolls list their fds");
});

t.test('auxv', async (t) => {
  const auxv = readAuxv(process.pid);
  t.ok(auxv.some(([k, v]) => k === AT_PAGESZ && v === 4096n), 'AT_PAGESZ');
  t.ok(auxv.every(([k]) => k !== 0n), 'AT_NULL excluded');
  const raw = readAuxvRaw(process.pid);
  t.equal(raw.length, (auxv.length + 1) * 16, 'raw holds the AT_NULL pair');
  t.equal(raw.readBigUInt64LE(raw.length - 16), 0n);
});

t.test('threads, children, cmdline, links', async (t) => {
  const threads = listThreads(process.pid);
  t.ok(threads.includes(process.pid) && threads.length > 1, 'node has threads');
  const dir = tmpdir(t);
  const pid = await sleeper(t, 'sleep', dir);
  t.ok(listChildren(process.pid).includes(pid), 'the child');
  t.same(listChildren(pid), []);
  t.same(readCmdline(pid), [path.join(dir, 'sleep'), '30']);
  t.equal(readExeLink(pid), fs.realpathSync('/bin/sleep'));
  t.equal(readCwdLink(pid), dir);
  t.equal(readRootLink(pid), '/');
  t.same(readTimers(pid), []);
});

t.test('POSIX timers of the signals fixture', async (t) => {
  const fx = await startFixture('signals', [], { t });
  t.same(readTimers(fx.pid), [
    { id: Number(fx.readyInfo.timer), signal: 35, sigevValue: 0xc0ffeen, notify: 'signal', toThread: false, notifyPid: fx.pid, clockId: 1 },
  ]);
  const st = readStatus(fx.pid);
  const bit = (sig: number) => 1n << BigInt(sig - 1);
  t.equal(st.sigBlk, bit(13) | bit(34), 'SIGPIPE and SIGRTMIN blocked');
  t.equal(st.sigPnd & bit(34), bit(34), 'SIGRTMIN pending on the thread');
  t.equal(st.shdPnd & bit(13), bit(13), 'SIGPIPE pending on the process');
  t.equal(st.sigIgn & bit(1), bit(1), 'SIGHUP ignored');
  t.equal(st.sigCgt & (bit(10) | bit(12) | bit(14)), bit(10) | bit(12) | bit(14), 'USR1, USR2, ALRM caught');
});

t.test('limits', async (t) => {
  const limits = readLimits(process.pid);
  t.equal(limits.length, 16);
  t.equal(limits[7]!.resource, 'RLIMIT_NOFILE');
  t.equal(limits[7]!.description, 'Max open files');
  t.equal(limits[7]!.units, 'files');
  const shell = spawnSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn; ulimit -Ss'], { encoding: 'utf8' }).stdout.trim().split('\n');
  const value = (s: string) => (s === 'unlimited' ? RLIM_INFINITY : BigInt(s));
  t.equal(limits[7]!.soft, value(shell[0]!));
  t.equal(limits[7]!.hard, value(shell[1]!));
  t.equal(limits[3]!.soft, shell[2] === 'unlimited' ? RLIM_INFINITY : value(shell[2]!) * 1024n, 'RLIMIT_STACK');
  t.equal(limits[15]!.resource, 'RLIMIT_RTTIME');
});

t.test('errors name the file', async (t) => {
  const pid = 2147483600;
  t.throws(() => readStat(pid), { name: 'ProcError', path: `/proc/${pid}/stat`, code: 'ENOENT' });
  t.throws(() => readMaps(pid), { name: 'ProcError', message: new RegExp(`^/proc/${pid}/maps: `) });
  t.throws(() => openPagemap(pid), { name: 'ProcError', path: `/proc/${pid}/pagemap` });
  t.throws(() => readFdinfo(process.pid, 99999), { name: 'ProcError', path: `/proc/${process.pid}/fdinfo/99999`, code: 'ENOENT' });
});
