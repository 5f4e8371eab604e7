// A multi-process daemon: nginx (master + 2 workers: a shared listening socket, socket pairs
// between master and workers, epoll, eventfd, log files) is dumped and restored with its PIDs
// and serves the page again. .ci/run installs Debian's nginx.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import t from 'tap';
import { freePort, makeSubreaper, reapPid, tmpdir, trackChildProcess } from '../helpers/index.js';
import { dump, restoreDetached } from '../tree/util.js';

makeSubreaper();

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; }).on('end', () => resolve(`${res.statusCode} ${body}`));
    }).on('error', reject).on('timeout', function (this: http.ClientRequest) { this.destroy(new Error('timeout')); });
  });
}

const children = (pid: number) =>
  fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);

t.test('nginx master and workers survive dump and restore and serve again', async (t) => {
  const port = await freePort();
  const dir = tmpdir(t);
  fs.mkdirSync(`${dir}/logs`);
  fs.writeFileSync(`${dir}/nginx.conf`, [
    'worker_processes 2;', `pid ${dir}/nginx.pid;`, `error_log ${dir}/logs/error.log;`, 'daemon off;',
    'events { worker_connections 64; }',
    `http { access_log ${dir}/logs/access.log; server { listen 127.0.0.1:${port}; location / { return 200 "hello from nginx\\n"; } } }`,
  ].join('\n'));
  const child = spawn('nginx', ['-c', `${dir}/nginx.conf`, '-p', dir], { stdio: 'ignore' });
  const exited = trackChildProcess(child);
  const master = child.pid!;
  let workers: number[] = [];
  let restored = false;
  t.teardown(async () => {
    for (const pid of [master, ...workers]) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    if (restored) for (const pid of [master, ...workers]) await reapPid(pid);
    else await exited;
  });
  const deadline = Date.now() + 10000;
  for (;;) {
    try {
      if ((await get(port)) === '200 hello from nginx\n' && children(master).length === 2) break;
    } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error('nginx did not come up');
    await new Promise((r) => setTimeout(r, 50));
  }
  workers = children(master);
  t.equal(workers.length, 2, `two workers: ${workers.join(' ')}`);

  await dump(master, `${dir}/image`);
  await exited;
  for (const w of workers) await reapPid(w);
  t.equal(await restoreDetached(`${dir}/image`), master, 'the master is back with its PID');
  restored = true;
  t.same(children(master), workers, 'with its two workers, with their PIDs');
  for (let i = 0; i < 6; i++) t.equal(await get(port), '200 hello from nginx\n', `request ${i + 1} served`);
  const log = fs.readFileSync(`${dir}/logs/access.log`, 'utf8').trim().split('\n');
  t.ok(log.length >= 7, `the workers log to the same access log: ${log.length} lines`);
});
