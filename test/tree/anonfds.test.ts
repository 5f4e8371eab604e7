// eventfd, signalfd and timerfd keep their state across dump and restore.
import t from 'tap';
import { makeSubreaper, startFixture, tmpdir } from '../helpers/index.js';
import { cli, dump, killSession, restoreDetached, tickValues } from './util.js';

makeSubreaper();

t.test('eventfd counter, signalfd mask, timerfd interval', async (t) => {
  const fx = await startFixture('anonfds', [], { t });
  const P = fx.pid;
  t.teardown(() => killSession(P));
  await fx.waitTicks(11); // the eventfd counter check (every 10 ticks) has run once
  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  const shown = await cli(['show', image]);
  t.match(shown.stdout, /eventfd count \d+ semaphore/, 'show lists the eventfd');
  t.match(shown.stdout, /signalfd mask 0x200\b/, 'show lists the signalfd with SIGUSR1');
  t.match(shown.stdout, /timerfd clock 1 interval 0s 100000000ns/, 'show lists the timerfd');
  const timerBefore = tickValues(fx.lines(), 'timer').pop()!;
  t.equal(await restoreDetached(image), P, 'restored');
  const from = fx.lines().length;
  await fx.waitTicks(12); // past another eventfd counter check
  process.kill(P, 'SIGUSR1');
  t.equal(await fx.waitForLine(/^signalfd usr1/, 5000, from), 'signalfd usr1 1', 'SIGUSR1 arrives through the signalfd');
  await fx.waitTicks(3);
  const after = fx.lines().slice(from);
  t.equal(after.find((l) => l.startsWith('FAIL')), undefined, 'no FAIL: the eventfd counter is right');
  const timer = tickValues(after, 'timer');
  const nonDecreasing = timer.every((v, i) => i === 0 || v >= timer[i - 1]!);
  t.ok(nonDecreasing && timer[0]! >= timerBefore && timer.at(-1)! >= timerBefore + 5,
    `the timerfd keeps firing every 100 ms (ticks every 50): before ${timerBefore}, after ${timer.join(' ')}`);
});
