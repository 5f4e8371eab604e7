// An inotify instance keeps its watches (same wds, masks and inodes) across dump and restore,
// and the restored process receives the events of its watched file and directory. A dump with
// --leave-running leaves queued events to the process; a watch on a deleted file is refused.
import fs from 'node:fs';
import t from 'tap';
import { makeSubreaper, startFixture, tmpdir, type FixtureProcess } from '../helpers/index.js';
import { cli, dump, killSession, restoreDetached } from './util.js';

makeSubreaper();

const IN_MODIFY = 0x2;
const IN_ATTRIB = 0x4;
const IN_CLOSE_WRITE = 0x8;
const IN_CREATE = 0x100;
const IN_IGNORED = 0x8000;

/** /proc/PID/fdinfo of the fixture's inotify instance: flags and every watch (wd, inode, mask, file handle). */
const fdinfo = (fx: FixtureProcess) => fs.readFileSync(`/proc/${fx.pid}/fdinfo/${fx.readyInfo.inotify}`, 'utf8');

const eventLines = (lines: string[]) => lines.filter((l) => l.startsWith('event '));
const event = (wd: string | undefined, mask: number, name = '') => `event wd=${wd} mask=0x${mask.toString(16)} name=${name}`;

/** Stops the fixture reading its instance and makes the watched file queue two events. */
async function queueUnread(fx: FixtureProcess): Promise<void> {
  const from = fx.lines().length;
  process.kill(fx.pid, 'SIGUSR2');
  await fx.waitForLine(/^paused$/, 5000, from);
  fs.appendFileSync(`${fx.dir}/file`, 'queued\n'); // IN_MODIFY, IN_CLOSE_WRITE: 16 bytes each
}

/** Lets the fixture read again; resolves with the index of its "reading" line. */
async function resumeReading(fx: FixtureProcess): Promise<number> {
  const from = fx.lines().length;
  process.kill(fx.pid, 'SIGUSR1');
  await fx.waitForLine(/^reading$/, 5000, from);
  return fx.lines().findIndex((l, i) => i >= from && l === 'reading');
}

t.test('watches keep their wds and inodes; the restored process gets the events', async (t) => {
  const fx = await startFixture('inotify', (dir) => [dir], { t });
  const P = fx.pid;
  t.teardown(() => killSession(P));
  const { file_wd: fileWd, sub_wd: subWd, once_wd: onceWd, link_wd: linkWd } = fx.readyInfo;
  t.same([fileWd, subWd, onceWd, linkWd], ['1', '3', '4', '5'], 'wds 1, 3, 4 and 5: wd 2 was removed');
  await fx.waitTicks(2);
  await queueUnread(fx);
  const before = fdinfo(fx);
  t.match(before, /^flags:\s+02004000$/m, 'non-blocking, close-on-exec');
  t.equal(before.match(/^inotify wd:/gm)?.length, 4, `four watches:\n${before}`);

  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  const shown = await cli(['show', image]);
  t.match(shown.stdout, `inotify nonblocking watching wd 1 ${fx.dir}/file mask 0xa, wd 3 ${fx.dir}/sub mask 0x4000300, `
    + `wd 4 ${fx.dir}/once mask 0x80000004, wd 5 ${fx.dir}/link mask 0x4, 32 bytes of events unread (not restored) cloexec`, 'show lists the watches and the unread events');

  t.equal(await restoreDetached(image), P, 'restored');
  t.equal(fdinfo(fx), before, 'the same flags and watches: wd, inode, device, mask and file handle each');
  const from = await resumeReading(fx);
  fs.appendFileSync(`${fx.dir}/file`, 'after restore\n');
  fs.writeFileSync(`${fx.dir}/sub/created`, '');
  fs.chmodSync(`${fx.dir}/once`, 0o600);
  fs.chmodSync(`${fx.dir}/file`, 0o600); // an IN_ATTRIB of the symlink's target: no watch wants it
  fs.lutimesSync(`${fx.dir}/link`, 1, 1);
  await fx.waitForLine(new RegExp(`^${event(linkWd, IN_ATTRIB)}$`), 5000, from);
  t.same(eventLines(fx.lines().slice(from)), [
    event(fileWd, IN_MODIFY), event(fileWd, IN_CLOSE_WRITE),
    event(subWd, IN_CREATE, 'created'),
    event(onceWd, IN_ATTRIB), event(onceWd, IN_IGNORED),
    event(linkWd, IN_ATTRIB),
  ], 'the events of the file, the directory, the one-shot watch and the symlink, under their wds; the unread ones are gone');
  await fx.waitTicks(2);
  t.notMatch(fdinfo(fx), /^inotify wd:4 /m, 'the one-shot watch went after its event');
});

t.test('--leave-running: the queued events stay for the process, which goes on getting events', async (t) => {
  const fx = await startFixture('inotify', (dir) => [dir], { t });
  await fx.waitTicks(2);
  await queueUnread(fx);
  const before = fdinfo(fx);
  const image = `${tmpdir(t)}/image`;
  await dump(fx.pid, image, ['--leave-running']);
  const shown = await cli(['show', image]);
  t.match(shown.stdout, /, 32 bytes of events unread \(not restored\)/, 'the image counts the unread events');
  t.equal(fdinfo(fx), before, 'the instance is as it was');
  const from = await resumeReading(fx);
  fs.writeFileSync(`${fx.dir}/sub/later`, '');
  const created = event(fx.readyInfo.sub_wd, IN_CREATE, 'later');
  await fx.waitForLine(new RegExp(`^${created}$`), 5000, from);
  t.same(eventLines(fx.lines().slice(from)), [event(fx.readyInfo.file_wd, IN_MODIFY), event(fx.readyInfo.file_wd, IN_CLOSE_WRITE), created],
    'the two events queued before the dump are read after it, then the new one');
  t.equal(fx.child.exitCode, null, 'still running');
});

t.test('a watch on a deleted file is refused, naming fd, watch, inode and process', async (t) => {
  const fx = await startFixture('inotify', (dir) => [dir], { t });
  await fx.waitTicks(2);
  const file = `${fx.dir}/file`;
  const ino = fs.statSync(file, { bigint: true }).ino;
  // Held open here, the unlinked inode lives on, and the watch with it.
  const held = fs.openSync(file, 'r');
  t.teardown(() => fs.closeSync(held));
  fs.unlinkSync(file);
  const before = fdinfo(fx);
  const image = `${tmpdir(t)}/image`;
  const r = await cli(['dump', '-t', String(fx.pid), '-D', image]);
  t.equal(r.code, 1, 'the dump fails');
  t.match(r.stderr, `unsupported fd ${fx.readyInfo.inotify}: inotify watch 1 on inode ${ino} of device `, `it names the fd, the watch and the inode: ${r.stderr.trim()}`);
  t.match(r.stderr, `a deleted file, in process ${fx.pid}`, 'and the process');
  t.notOk(fs.existsSync(image), 'no image');
  const ticks = fx.lastTick();
  await fx.waitTicks(2);
  t.ok(fx.lastTick() > ticks, 'the process runs on');
  t.equal(fdinfo(fx), before, 'its instance untouched');
});

t.test('at restore, a watched file moved since the dump is found by its file handle', async (t) => {
  const fx = await startFixture('inotify', (dir) => [dir], { t });
  const P = fx.pid;
  t.teardown(() => killSession(P));
  await fx.waitTicks(2);
  const before = fdinfo(fx);
  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  fs.renameSync(`${fx.dir}/file`, `${fx.dir}/moved`);
  fs.renameSync(`${fx.dir}/sub`, `${fx.dir}/sub-moved`);
  t.equal(await restoreDetached(image), P, 'restored');
  t.equal(fdinfo(fx), before, 'the same watches, on the same inodes');
  const from = fx.lines().length;
  fs.appendFileSync(`${fx.dir}/moved`, 'after restore\n');
  fs.writeFileSync(`${fx.dir}/sub-moved/created`, '');
  const created = event(fx.readyInfo.sub_wd, IN_CREATE, 'created');
  await fx.waitForLine(new RegExp(`^${created}$`), 5000, from);
  t.same(eventLines(fx.lines().slice(from)), [event(fx.readyInfo.file_wd, IN_MODIFY), event(fx.readyInfo.file_wd, IN_CLOSE_WRITE), created],
    'events of the moved file and directory');
});

t.test('at restore, a watched file replaced since the dump is refused; nothing is restored', async (t) => {
  const fx = await startFixture('inotify', (dir) => [dir], { t });
  await fx.waitTicks(2);
  const image = `${tmpdir(t)}/image`;
  await dump(fx.pid, image);
  await fx.exited;
  const once = `${fx.dir}/once`;
  const ino = fs.statSync(once).ino;
  // A new file under the old name; its inode number may well be the one just freed.
  fs.unlinkSync(once);
  fs.writeFileSync(once, '');
  const r = await cli(['restore', '-D', image, '-d']);
  t.equal(r.code, 1, 'the restore fails');
  t.match(r.stderr, `inotify watch ${fx.readyInfo.once_wd} on inode ${ino} of device `, `it names the watch and the inode: ${r.stderr.trim()}`);
  t.match(r.stderr, `${once} is another file now (inode ${fs.statSync(once).ino} of device `, 'and what is at its path now');
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  t.throws(() => fs.statSync(`/proc/${fx.pid}`), { code: 'ENOENT' }, `PID ${fx.pid} is not taken: nothing half-restored`);
});
