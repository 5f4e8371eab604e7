// restoreProcess used as a library (as the runner's restore step and the bench use it): the
// process it restores is this process's child, and it leaves nothing of the image open.
import fs from 'node:fs';
import t from 'tap';
import { restoreProcess } from '../../src/state/restore.js';
import { readStat } from '../../src/sys/proc.js';
import { makeSubreaper, startFixture, tmpdir } from '../helpers/index.js';
import { dump, killRestoredAtTeardown } from './util.js';

makeSubreaper();

/** Paths this process has open under dir. */
function openUnder(dir: string): string[] {
  return fs.readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const link = fs.readlinkSync(`/proc/self/fd/${fd}`);
      return link.startsWith(`${dir}/`) ? [`${fd} -> ${link}`] : [];
    } catch {
      return []; // the fd of the readdir itself, closed meanwhile
    }
  });
}

t.test('restoreProcess in this process: no file of the image stays open', async (t) => {
  const fx = await startFixture('counter', [], { t });
  await fx.waitTicks(2);
  const dir = `${tmpdir(t)}/image`;
  await dump(fx.pid, dir);
  await fx.exited;

  const { pid } = await restoreProcess({ dir });
  killRestoredAtTeardown(t, pid);
  t.equal(pid, fx.pid);
  t.equal(readStat(pid).ppid, process.pid, 'the restored process is our child');
  await fx.waitTicks(2);
  t.same(openUnder(dir), [], 'the pages file and records are closed once restoreProcess returns');
});
