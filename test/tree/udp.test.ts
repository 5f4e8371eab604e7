// UDP sockets keep their addresses, peers, options and queued datagrams across dump and restore:
// servers echo, connected clients keep talking, and what waited unread at dump is delivered from
// its original sender. A TCP listener of the same process keeps its options and accepts.
import dgram from 'node:dgram';
import fs from 'node:fs';
import net from 'node:net';
import t, { type Test } from 'tap';
import { closeFd } from '../../src/sys/files.js';
import { peekQueue, pullFd } from '../../src/sys/sockets.js';
import { formatSockaddr } from '../../src/state/files/inet.js';
import { freePort, makeSubreaper, reapPid, startFixture, tmpdir, type FixtureProcess } from '../helpers/index.js';
import { cli, dump, killSession, tickValues } from './util.js';

makeSubreaper();

/** A UDP socket of the test on the loopback, and the datagrams it received. */
async function testSocket(t: Test, family: 4 | 6) {
  const s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
  t.teardown(() => s.close());
  const got: Array<{ text: string; from: string }> = [];
  s.on('message', (m, r) => got.push({ text: m.toString(), from: `${r.address}:${r.port}` }));
  await new Promise<void>((resolve) => s.bind(0, family === 4 ? '127.0.0.1' : '::1', resolve));
  return {
    port: s.address().port,
    send: (text: string, port: number) => new Promise<void>((resolve, reject) =>
      s.send(text, port, family === 4 ? '127.0.0.1' : '::1', (e) => (e ? reject(e) : resolve()))),
    /** Resolves with the sender of the first datagram saying `text`. */
    async received(text: string): Promise<string> {
      for (let i = 0; i < 500; i++) {
        const m = got.find((g) => g.text === text);
        if (m) return m.from;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no echo of ${text}`);
    },
  };
}

/** The first datagram waiting at fd of pid ("payload from addr:port"), read without taking it. */
function firstQueued(pid: number, fd: number): string | undefined {
  const copy = pullFd(pid, fd);
  try {
    const d = peekQueue(copy, 65536)[0];
    return d && `${d.data.toString()} from ${formatSockaddr(d.from)}`;
  } finally {
    closeFd(copy);
  }
}

/** `ckpt restore -d` of image; its PID and what ckpt printed. */
async function restoreShowingOutput(image: string): Promise<{ pid: number; output: string }> {
  const pidfile = `${image}.pid`;
  const r = await cli(['restore', '-D', image, '-d', '--pidfile', pidfile]);
  if (r.code !== 0) throw new Error(`restore: exit ${r.code}\n${r.stdout}${r.stderr}`);
  const pid = Number(fs.readFileSync(pidfile, 'utf8'));
  fs.rmSync(pidfile);
  return { pid, output: r.stdout + r.stderr };
}

/** SIGUSR1 toggles the fixture's servers between reading and leaving datagrams queued. */
async function toggleServers(fx: FixtureProcess, paused: 0 | 1): Promise<void> {
  const from = fx.lines().length;
  process.kill(fx.pid, 'SIGUSR1');
  await fx.waitForLine(new RegExp(`^paused ${paused}$`), 5000, from);
}

t.test('udp servers, connected clients, options and queued datagrams', async (t) => {
  const port = await freePort();
  const fx = await startFixture('udp', [String(port)], { t });
  const P = fx.pid;
  t.teardown(() => killSession(P));
  const info = fx.readyInfo;
  t.match(info, { rcvbuf: '131072', sndbuf: '65536', tos: '16', ttl: '33', tclass: '32', hops: '7', dev: 'lo' }, 'the fixture set its options');
  const port6 = Number(info.port6);
  const me = await testSocket(t, 4);
  const me6 = await testSocket(t, 6);
  await fx.waitTicks(3);

  // Datagrams wait at both servers (from the test and from the clients) during each dump.
  await toggleServers(fx, 1);
  await me.send('queued-1', port);
  await me6.send('queued6-1', port6);
  await fx.waitTicks(2);
  const live = `${tmpdir(t)}/live`;
  await dump(P, live, ['--leave-running']);
  const shown = (await cli(['show', live])).stdout;
  t.match(shown, new RegExp(`udp socket bound 127\\.0\\.0\\.1:${port} reuseaddr SO_RCVBUF=131072 SO_BROADCAST=1 IP_TOS=16 IP_TTL=33 SO_PRIORITY=6, \\d+ datagram\\(s\\) queued`),
    'show: the server, its options and its queue');
  t.match(shown, new RegExp(`udp socket connected 127\\.0\\.0\\.1:${info.cli} -> 127\\.0\\.0\\.1:${port} SO_SNDBUF=65536`), 'show: the connected client');
  t.match(shown, new RegExp(`udp6 socket bound \\[::1\\]:${port6} v6only device lo IPV6_UNICAST_HOPS=7 IPV6_TCLASS=32, \\d+ datagram\\(s\\) queued`),
    'show: the IPv6 server');
  t.match(shown, new RegExp(`udp6 socket connected \\[::1\\]:${info.cli6} -> \\[::1\\]:${port6}`), 'show: the IPv6 client');
  t.match(shown, /udp socket unbound 0\.0\.0\.0:0/, 'show: the socket never bound');
  t.match(shown, new RegExp(`udp socket bound 0\\.0\\.0\\.0:${info.sent}`), 'show: the socket that only sent, on its ephemeral port');
  t.match(shown, new RegExp(`tcp socket listening 127\\.0\\.0\\.1:${info.tcp} SO_RCVBUF=200000 SO_KEEPALIVE=1 TCP_NODELAY=1 TCP_KEEPIDLE=60 TCP_DEFER_ACCEPT=7`),
    'show: the TCP listener and its options');

  // Left running, the servers still have their queues: each datagram is answered once read.
  await fx.waitTicks(2);
  const echoedBefore = tickValues(fx.lines(), 'echoed').pop()!;
  await toggleServers(fx, 0);
  t.equal(await me.received('queued-1'), `127.0.0.1:${port}`, 'after a --leave-running dump the queued datagram is still read and echoed');
  t.equal(await me6.received('queued6-1'), `::1:${port6}`, 'the same at the IPv6 server');
  await fx.waitTicks(3);
  t.ok(tickValues(fx.lines(), 'echoed').pop()! > echoedBefore + 2, 'the pings queued during the dump are echoed, in order, none lost');

  await toggleServers(fx, 1);
  await me.send('queued-2', port);
  await me6.send('queued6-2', port6);
  await me.send('to-sent', Number(info.sent));
  await fx.waitTicks(2);
  const image = `${tmpdir(t)}/image`;
  await dump(P, image);
  await fx.exited;
  const restored = await restoreShowingOutput(image);
  t.equal(restored.pid, P, 'restored');
  t.notMatch(restored.output, /warning/, 'no warning: every queued datagram was delivered');
  t.equal(firstQueued(P, Number(info.sentfd)), `to-sent from 127.0.0.1:${me.port}`,
    'a datagram waiting at a socket bound to the wildcard is there again, from its sender');
  const from = fx.lines().length;
  await fx.waitTicks(2);
  const pausedEchoed = tickValues(fx.lines().slice(from), 'echoed').pop()!;
  await toggleServers(fx, 0);
  t.equal(await fx.waitForLine(/^datagram queued-2 /, 5000, from), `datagram queued-2 from 127.0.0.1:${me.port}`,
    'the datagram queued at dump is read after the restore, from its original sender');
  t.equal(await me.received('queued-2'), `127.0.0.1:${port}`, 'and its echo reaches that sender');
  t.equal(await fx.waitForLine(/^datagram queued6-2 /, 5000, from), `datagram queued6-2 from [::1]:${me6.port}`, 'the same at the IPv6 server');
  t.equal(await me6.received('queued6-2'), `::1:${port6}`, 'its echo reaches the IPv6 sender');
  await me.send('fresh', port);
  t.equal(await me.received('fresh'), `127.0.0.1:${port}`, 'the restored server answers a new datagram');
  await me6.send('fresh6', port6);
  t.equal(await me6.received('fresh6'), `::1:${port6}`, 'the restored IPv6 server answers a new datagram');
  const conn = net.connect(Number(info.tcp), '127.0.0.1');
  t.teardown(() => conn.destroy());
  conn.end('hello-tcp');
  t.equal(await fx.waitForLine(/^accepted /, 5000, from), 'accepted hello-tcp', 'the restored TCP listener (TCP_DEFER_ACCEPT: once data came) accepts');
  await fx.waitTicks(3);
  const after = fx.lines().slice(from);
  t.equal(after.find((l) => l.startsWith('FAIL')), undefined, 'no FAIL: addresses, peers and options as at start, echoes in order');
  const echoed = tickValues(after, 'echoed');
  const echoed6 = tickValues(after, 'echoed6');
  t.ok(echoed.at(-1)! > pausedEchoed + 2 && echoed6.at(-1)! > pausedEchoed + 2,
    `the clients' pings, queued at dump and sent since, are all echoed: ${echoed.join(' ')} / ${echoed6.join(' ')}`);

  // When another socket holds the server's port at restore, the kernel could give it a re-sent
  // datagram: the queued datagrams are dropped, with a warning, rather than risked.
  const quiet = fx.lines().length;
  process.kill(P, 'SIGUSR2');
  await fx.waitForLine(/^pings 0$/, 5000, quiet);
  await fx.waitTicks(1); // the last echoes are read
  await toggleServers(fx, 1);
  await me.send('queued-3', port);
  await fx.waitTicks(2);
  const image3 = `${tmpdir(t)}/image3`;
  await dump(P, image3);
  await reapPid(P);
  const rival = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise<void>((resolve) => rival.bind(port, '127.0.0.1', resolve));
  let again: { pid: number; output: string };
  try {
    again = await restoreShowingOutput(image3);
  } finally {
    await new Promise<void>((resolve) => rival.close(resolve));
  }
  t.equal(again.pid, P, 'restored with another socket on the server port');
  t.match(again.output, new RegExp(`warning: 1 datagram\\(s\\) queued at udp socket 127\\.0\\.0\\.1:${port} dropped: another socket is bound to port ${port}`),
    'the restore warns that the queued datagram is dropped');
  t.equal(firstQueued(P, Number(info.srvfd)), undefined, 'nothing waits at the restored server');
  const from3 = fx.lines().length;
  await toggleServers(fx, 0);
  await me.send('fresh-3', port);
  t.equal(await me.received('fresh-3'), `127.0.0.1:${port}`, 'the server answers a new datagram');
  const logged = fx.lines().slice(from3).filter((l) => l.startsWith('datagram '));
  t.same(logged, [`datagram fresh-3 from 127.0.0.1:${me.port}`], 'the dropped datagram never reached the program');
  process.kill(P, 'SIGUSR2');
  await fx.waitForLine(/^pings 1$/, 5000, from3);
  await fx.waitTicks(3);
  t.equal(fx.lines().slice(from3).find((l) => l.startsWith('FAIL')), undefined, 'no FAIL: the clients talk on');
});
