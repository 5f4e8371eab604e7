// A memfd mapped by a parent and its child is one object again after restore, under its name.
import fs from 'node:fs';
import t from 'tap';
import { makeSubreaper, reapPid, startFixture, tmpdir } from '../helpers/index.js';
import { dump, increasing, killSession, restoreDetached, tickValues } from './util.js';

makeSubreaper();

const memfdLine = (pid: number) => fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').find((l) => l.includes('/memfd:'));
const inode = (line: string | undefined) => line?.trim().split(/\s+/)[4];

t.test('memfd shared by parent and child survives dump and restore', async (t) => {
  const fx = await startFixture('memfd', [], { t });
  const P = fx.pid;
  const C = Number(fx.readyInfo.child);
  t.teardown(() => killSession(P));
  await fx.waitTicks(3);
  t.equal(inode(memfdLine(P)), inode(memfdLine(C)), 'one object before');
  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  await reapPid(C);
  const from = fx.lines().length;
  t.equal(await restoreDetached(image), P, 'restored');
  const [lineP, lineC] = [memfdLine(P), memfdLine(C)];
  t.match(lineP, /rw-s .*\/memfd:ckpt-fixture \(deleted\)$/, `the parent maps the memfd by its name: ${lineP}`);
  t.equal(inode(lineP), inode(lineC), 'parent and child map one object again');
  const deadline = Date.now() + 5000;
  while (fx.lines().slice(from).filter((l) => l.startsWith('tick')).length < 3 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const after = fx.lines().slice(from);
  t.equal(after.find((l) => l.startsWith('FAIL')), undefined, 'no FAIL: the child answers through the shared pages');
  const values = tickValues(after, 'value');
  t.ok(values.length >= 3 && increasing(values), `values go on: ${values.join(' ')}`);
});

t.test('a memfd held as a descriptor and mapped is one object after restore', async (t) => {
  const fx = await startFixture('memfdfd', [], { t });
  const P = fx.pid;
  t.teardown(() => killSession(P));
  await fx.waitTicks(3);
  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  t.equal(await restoreDetached(image), P, 'restored');
  const fd = Number(fx.readyInfo.fd);
  t.equal(fs.readlinkSync(`/proc/${P}/fd/${fd}`), '/memfd:ckpt-held (deleted)', 'the descriptor is the memfd, by name');
  t.equal(inode(memfdLine(P)), String(fs.statSync(`/proc/${P}/fd/${fd}`).ino), 'the mapping is the same object');
  const from = fx.lines().length;
  await fx.waitTicks(4);
  t.equal(fx.lines().slice(from).find((l) => l.startsWith('FAIL')), undefined, 'writes through the mapping read back through the descriptor; seals and offset kept');
});
