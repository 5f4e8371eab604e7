// Pipes and FIFOs keep the bytes queued in them across dump and restore.
import t from 'tap';
import { makeSubreaper, startFixture, tmpdir } from '../helpers/index.js';
import { dump, killSession, restoreDetached } from './util.js';

makeSubreaper();

t.test('a FIFO and a pipe with queued bytes', async (t) => {
  const fx = await startFixture('fifo', (dir) => [dir], { t });
  const P = fx.pid;
  t.teardown(() => killSession(P));
  await fx.waitTicks(2);
  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  t.equal(await restoreDetached(image), P, 'restored');
  const from = fx.lines().length;
  process.kill(P, 'SIGUSR1');
  t.equal(await fx.waitForLine(/^queued /, 5000, from), 'queued fifo=hello-fifo pipe=hello-pipe', 'the queued bytes are still there');
  await fx.waitForLine(/^tick \d+ ok drained=1/, 5000, from);
  await fx.waitTicks(2);
  t.equal(fx.lines().find((l) => l.startsWith('FAIL')), undefined, 'round trips through both go on');
});
