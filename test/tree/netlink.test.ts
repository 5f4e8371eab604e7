// Netlink sockets come back bound to the same port ids, in the same multicast groups (also past
// the first 32) and with their options: the kernel answers the route socket again, and messages
// sent to the usersock port and group reach the restored process.
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { makeSubreaper, startFixture, tmpdir } from '../helpers/index.js';
import { cli, dump, killSession, restoreDetached, tickNumbers } from './util.js';

makeSubreaper();

/** Sends text to a NETLINK_USERSOCK port, or to multicast group `group`, from a python3 socket. */
function sendUsersock(text: string, port: number, group = 0): void {
  execFileSync('python3', ['-c', `
import socket, sys
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 2)
s.bind((0, 0))
try:
    s.sendto(sys.argv[1].encode(), (int(sys.argv[2]), (1 << (int(sys.argv[3]) - 1)) if int(sys.argv[3]) else 0))
except ConnectionRefusedError:
    pass  # a group message is also offered to the kernel's port 0, which usersock does not have
`, text, String(port), String(group)]);
}

t.test('route, usersock and generic netlink sockets', async (t) => {
  const port = 3_000_000_000 + Math.floor(Math.random() * 1_000_000);
  const fx = await startFixture('netlink', [String(port)], { t });
  const P = fx.pid;
  t.teardown(() => killSession(P));
  await fx.waitTicks(3);
  t.equal(fx.readyInfo.route_port, String(P), 'the route socket was autobound to the PID');

  // A message waiting unread at dump time cannot be sent again by its sender: the dump says so.
  process.kill(P, 'SIGSTOP');
  sendUsersock('lost-in-queue', port);
  const image = `${tmpdir(t)}/image`;
  const dumped = await dump(P, image);
  await fx.exited;
  t.match(dumped.stdout + dumped.stderr, new RegExp(`netlink socket \\(fd \\d+ of process ${P}, protocol 2, port ${port}\\): \\d+ bytes of messages queued unread are not kept`),
    'the dump warns about the queued message');
  const shown = (await cli(['show', image])).stdout;
  t.match(shown, `netlink socket protocol 0 port ${P} groups 1,36 NETLINK_EXT_ACK NETLINK_GET_STRICT_CHK`, 'show: the route socket');
  t.match(shown, `netlink socket protocol 2 port ${port} groups 3`, 'show: the usersock socket');
  t.match(shown, 'netlink socket protocol 16 port 0', 'show: the unbound generic socket');

  t.equal(await restoreDetached(image), P, 'restored');
  const from = fx.lines().length;
  await fx.waitTicks(3);
  sendUsersock('to-the-port', port);
  sendUsersock('to-the-group', port, 3);
  t.match(await fx.waitForLine(/^user got to-the-port /, 5000, from), /^user got to-the-port from \d+$/, 'a message to the port reaches it');
  t.ok(await fx.waitForLine(/^user got to-the-group /, 5000, from), 'a message to the group reaches it');
  await fx.waitTicks(3);
  const after = fx.lines().slice(from);
  t.equal(after.find((l) => l.startsWith('FAIL')), undefined, 'the kernel answers the route socket; ports, groups and options as before');
  t.notOk(after.some((l) => l.includes('lost-in-queue')), 'the queued message is not delivered');
  const ticks = tickNumbers(fx.lines());
  t.ok(ticks.every((n, i) => i === 0 || n === ticks[i - 1]! + 1), 'ticks go on without a gap');
});
