// Unix sockets of every shape keep their names, connections and queues across dump and restore.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { makeSubreaper, packageRoot, startFixture, tmpdir } from '../helpers/index.js';
import { fileLines, startProgram, until } from '../restore/util.js';
import { cli, dump, killSession, reapAll, restoreDetached } from './util.js';

makeSubreaper();

t.test('listeners, accepted and waiting connections, datagrams, names and queues', async (t) => {
  const fx = await startFixture('unixsk', (d) => [d], { t });
  const dir = fx.dir;
  const P = fx.pid;
  const C = Number(fx.readyInfo.child);
  t.teardown(() => killSession(P));
  await fx.waitTicks(3);

  // A connection from outside the tree cannot be made again: refused, and the tree runs on.
  const outsider = net.connect(`${dir}/srv.sock`);
  await new Promise<void>((resolve, reject) => outsider.once('connect', resolve).once('error', reject));
  const refused = await cli(['dump', '-t', String(P), '-D', `${dir}/refused`]);
  outsider.destroy();
  t.not(refused.code, 0, 'dump with an outside connection fails');
  t.match(refused.stderr, `unsupported fd 4: stream unix socket ${dir}/srv.sock has a connection from outside the tree `
    + `waiting to be accepted in process ${P}`, 'naming the listener and the process');
  t.notOk(fs.existsSync(`${dir}/refused`), 'no image left');
  const before = fx.lines().length;
  await fx.waitTicks(3);
  t.equal(fx.lines().slice(before).find((l) => l.startsWith('FAIL')), undefined, 'the tree runs on after the refused dump');

  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  await reapAll([C]);
  const shown = (await cli(['show', image])).stdout;
  t.match(shown, `unix stream socket ${dir}/srv.sock`, 'show names the listener');
  t.match(shown, /listening, backlog 7, 2 waiting/, 'with its backlog and both waiting connections (the child\'s, the closed outsider\'s)');
  t.match(shown, /unix seqpacket socket @ckpt-seq-\d+ \(\d+\), accepted, connected to \d+, 3 messages queued/, 'the accepted seqpacket connection and its messages');
  t.match(shown, `unix dgram socket ${dir}/gone.sock (`, 'the socket whose file is gone');
  t.match(shown, /file removed/, '... is known to have lost its file');
  t.match(shown, /peer closed, shut down for reading and writing, 3 bytes queued/, 'the pair whose other end closed');

  t.equal(await restoreDetached(image), P, 'restored');
  t.equal(fs.statSync(`${dir}/srv.sock`).mode & 0o777, 0o640, 'the listener\'s socket file has its mode');
  t.notOk(fs.existsSync(`${dir}/gone.sock`), 'the removed socket file stays removed');
  t.ok(fs.statSync(`${dir}/rel.sock`).isSocket(), 'the relative name is bound in its directory');
  t.ok(fs.existsSync(`/proc/${C}`), 'the child is back with its PID');
  const from = fx.lines().length;
  await fx.waitTicks(3);
  process.kill(P, 'SIGUSR1');
  await fx.waitForLine(/^drained ok/, 5000, from);
  await fx.waitTicks(3);
  t.equal(fx.lines().slice(from).find((l) => l.startsWith('FAIL')), undefined,
    'round trips go on; names, queued messages and their senders, the waiting connection: all as they were');
});

t.test('peers outside the tree: a datagram socket is connected again by name, a stream connection is refused', async (t) => {
  const dir = tmpdir(t);
  const script = path.join(packageRoot, 'test', 'tree', 'unix-outside.py');
  const start = async (role: string) => {
    const log = `${dir}/${role}.log`;
    const p = startProgram(t, 'python3', ['-B', script, role, dir, log], dir);
    await until(() => fileLines(log).some((l) => l.startsWith('ready')), 10_000, `${role} ready`);
    return { ...p, log };
  };
  const server = await start('server');
  const client = await start('dgram-client');
  const got = () => fileLines(server.log).filter((l) => l.startsWith('got tick')).length;
  await until(() => got() >= 2, 5000, 'ticks at the server');

  const image = `${dir}/image`;
  await dump(client.pid, image);
  await client.exited;
  t.match((await cli(['show', image])).stdout, `connected to ${dir}/ext-dgram.sock outside the tree`, 'show names the outside peer');
  const before = got();
  t.equal(await restoreDetached(image), client.pid, 'restored');
  await until(() => got() >= before + 3, 5000, 'ticks from the restored client');
  t.pass('the restored client\'s datagrams reach the server outside the tree');

  const stream = await start('stream-client');
  const fd = /fd=(\d+)/.exec(fileLines(stream.log)[0]!)![1];
  const refused = await cli(['dump', '-t', String(stream.pid), '-D', `${dir}/refused`]);
  t.not(refused.code, 0, 'a stream connection to a server outside the tree is refused');
  t.match(refused.stderr, new RegExp(`unsupported fd ${fd}: stream unix socket connected to stream unix socket ${dir}/ext-stream.sock `
    + `outside the tree in process ${stream.pid}`), 'naming the connection');
  t.equal(stream.child.exitCode, null, 'the client keeps running');
});
