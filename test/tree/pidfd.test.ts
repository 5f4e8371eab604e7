// A pidfd of a process of the tree refers to the restored process.
import t from 'tap';
import { makeSubreaper, reapPid, startFixture, tmpdir } from '../helpers/index.js';
import { dump, killSession, restoreDetached } from './util.js';
import fs from 'node:fs';

makeSubreaper();

t.test('pidfds of the child and of itself', async (t) => {
  const fx = await startFixture('pidfd', [], { t });
  const P = fx.pid;
  const C = Number(fx.readyInfo.child);
  t.teardown(() => killSession(P));
  await fx.waitTicks(2);
  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  await reapPid(C);
  t.equal(await restoreDetached(image), P, 'restored');
  t.match(fs.readFileSync(`/proc/${P}/fdinfo/${fx.readyInfo.pidfd}`, 'utf8'), new RegExp(`^Pid:\\s+${C}$`, 'm'), `the pidfd refers to the restored child ${C}`);
  const from = fx.lines().length;
  await fx.waitTicks(2);
  process.kill(P, 'SIGUSR1');
  t.equal(await fx.waitForLine(/^child ended/, 5000, from), 'child ended', 'the child was killed and its exit seen through the pidfd');
  await fx.waitTicks(2);
  t.equal(fx.lines().slice(from).find((l) => l.startsWith('FAIL')), undefined, 'no FAIL');
  t.notOk(fs.existsSync(`/proc/${C}`), 'the child is gone');
});
