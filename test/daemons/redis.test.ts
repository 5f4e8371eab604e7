// A real daemon nobody here wrote: redis-server (epoll, a TCP listening socket, a pipe, five
// threads) holding 1000 keys is dumped and restored, still holds them, answers on its port and
// accepts writes. .ci/run installs Debian's redis-server.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { freePort, makeSubreaper, reapPid, tmpdir, trackChildProcess } from '../helpers/index.js';
import { dump, restoreDetached } from '../tree/util.js';

makeSubreaper();
const run = promisify(execFile);

async function redis(port: number, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-p', String(port), ...args]);
  return stdout.trim();
}

async function waitForPort(port: number, ms = 10000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if ((await redis(port, 'PING')) === 'PONG') return;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`redis on ${port} did not answer within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('redis-server with 1000 keys survives dump and restore', async (t) => {
  const port = await freePort();
  const dir = tmpdir(t);
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' });
  const exited = trackChildProcess(child);
  const pid = child.pid!;
  let restored = 0;
  t.teardown(async () => {
    try { process.kill(restored || pid, 'SIGKILL'); } catch { /* gone */ }
    if (restored) await reapPid(restored);
    else await exited;
  });
  await waitForPort(port);
  const commands = Array.from({ length: 1000 }, (_, i) => `SET key${i} value${i * 7}`).join('\n');
  await new Promise<void>((resolve, reject) => {
    const cli = spawn('redis-cli', ['-p', String(port)], { stdio: ['pipe', 'ignore', 'inherit'] });
    cli.on('error', reject).on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`redis-cli exit ${code}`))));
    cli.stdin.end(`${commands}\n`);
  });
  t.equal(await redis(port, 'DBSIZE'), '1000', '1000 keys before the dump');

  await dump(pid, `${dir}/image`);
  await exited;
  restored = await restoreDetached(`${dir}/image`);
  t.equal(restored, pid, 'restored with its PID');
  t.equal(await redis(port, 'DBSIZE'), '1000', 'still 1000 keys');
  t.equal(await redis(port, 'GET', 'key777'), `value${777 * 7}`, 'a value intact');
  t.equal(await redis(port, 'SET', 'after', 'restore'), 'OK', 'accepts writes');
  t.equal(await redis(port, 'GET', 'after'), 'restore', 'and reads them back');
  t.equal(await redis(port, 'DBSIZE'), '1001');
});
