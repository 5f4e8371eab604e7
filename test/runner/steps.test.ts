// The built-in step kinds, each run as a one-step (or few-step) pipeline.
import { appendFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { runPipeline, type RunOptions, type RunResult } from '../../src/runner/index.js';
import { cli, jsonLines, scratch } from './helpers.js';

async function run(steps: Array<Record<string, unknown>>, options: RunOptions = {}): Promise<RunResult> {
  return runPipeline({ version: 1, name: 'steps', steps }, { output: 'silent', ...options });
}

/** Gone, or a zombie waiting for a parent to reap it: either way it no longer runs. */
async function stopped(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat === undefined || / [ZX] /.test(stat.slice(stat.lastIndexOf(')')));
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

t.test('exec', async (t) => {
  const dir = await scratch(t);
  await mkdir(join(dir, 'sub'));

  t.test('runs in cwd (relative to the pipeline) with extra env', async (t) => {
    const result = await run([{ id: 'a', exec: { run: 'echo "$PWD $N $B"', cwd: 'sub', env: { N: 3, B: true } } }], { cwd: dir });
    t.same(result.outputs['a'], { stdout: `${join(dir, 'sub')} 3 true`, 'exit-code': 0 });
  });

  t.test('expect-exit names the exit code that counts as success', async (t) => {
    const result = await run([{ id: 'a', exec: { run: 'exit 3', 'expect-exit': 3 } }]);
    t.equal(result.status, 'ok');
    t.equal(result.outputs['a']!['exit-code'], 3);
  });

  t.test('failures say how the command ended', async (t) => {
    t.equal((await run([{ exec: { run: 'kill -KILL $$' } }])).error?.message, '"kill -KILL $$" was killed by SIGKILL (expected 0)');
    t.equal((await run([{ exec: { run: 'true', cwd: 'nowhere' } }], { cwd: dir })).error?.message, `working directory ${join(dir, 'nowhere')} does not exist`);
  });

  t.test('does not wait for background processes that hold its output', async (t) => {
    const started = Date.now();
    const result = await run([{ id: 'bg', exec: { run: 'sleep 30 & echo $!' } }]);
    const pid = Number(result.outputs['bg']!['stdout']);
    t.teardown(() => killQuietly(pid));
    t.equal(result.status, 'ok');
    t.ok(Date.now() - started < 3000, 'returned without waiting for the background sleep');
  });

  t.test('a timeout stops the whole process group', async (t) => {
    const pidFile = join(dir, 'sleep.pid');
    const result = await run([{ exec: { run: `sleep 30 & echo $! > ${pidFile}; wait` }, timeout: '300ms' }]);
    t.equal(result.error?.message, 'timed out after 300ms');
    const pid = Number(await readFile(pidFile, 'utf8'));
    t.teardown(() => killQuietly(pid));
    t.ok(await stopped(pid), 'the grandchild was stopped too');
  });
});

t.test('spawn', async (t) => {
  const dir = await scratch(t);

  t.test('starts in the background with its output in files; outputs its pid', async (t) => {
    const out = join(dir, 'out.log');
    const result = await run([
      { id: 's', spawn: { run: 'echo to-stdout; echo to-stderr >&2; exec sleep 30', stdout: 'out.log', stderr: 'out.log' } },
      { 'wait-for': { log: { path: out, pattern: 'to-stderr' }, timeout: '5s' } },
    ], { cwd: dir });
    const pid = result.outputs['s']!['pid'] as number;
    t.teardown(() => killQuietly(pid));
    t.equal(result.status, 'ok');
    t.type(pid, 'number');
    t.notOk(await stopped(pid), 'still running after the pipeline');
    t.equal(await readFile(out, 'utf8'), 'to-stdout\nto-stderr\n');
  });

  t.test('its rollback stops its process group when the pipeline fails', async (t) => {
    const pidFile = join(dir, 'child.pid');
    const result = await run([
      { id: 's', spawn: { run: `sleep 30 & echo $! > ${pidFile}; wait` } },
      { 'wait-for': { file: pidFile, timeout: '5s' } },
      { exec: { run: 'false' } },
    ]);
    t.equal(result.status, 'failed');
    const leader = result.outputs['s']!['pid'] as number;
    const child = Number(await readFile(pidFile, 'utf8'));
    t.teardown(() => [leader, child].forEach(killQuietly));
    t.ok(await stopped(leader), 'the spawned shell was stopped');
    t.ok(await stopped(child), 'and the process it started');
  });

  t.test('does not keep ckpt running after the pipeline ends', async (t) => {
    const file = join(dir, 'spawn.yaml');
    await writeFile(file, 'version: 1\nname: leave running\nsteps:\n  - id: s\n    spawn: { run: "exec sleep 30" }\n');
    const started = Date.now();
    const result = await cli(['run', file, '--json']);
    const end = jsonLines(result.stdout).find((event) => event.event === 'step-end');
    const pid = end?.event === 'step-end' ? (end.outputs['pid'] as number) : 0;
    t.teardown(() => killQuietly(pid));
    t.equal(result.code, 0, result.stderr);
    t.ok(Date.now() - started < 5000, 'ckpt exited while the sleep runs on');
    t.notOk(await stopped(pid));
  });
});

t.test('wait-for', async (t) => {
  const dir = await scratch(t);

  t.test('a port that starts listening later', async (t) => {
    const server = createServer((socket) => socket.end());
    t.teardown(() => server.close());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    server.close();
    setTimeout(() => server.listen(port, '127.0.0.1'), 200);
    const result = await run([{ id: 'w', 'wait-for': { port: `127.0.0.1:${port}`, timeout: '5s' } }]);
    t.equal(result.status, 'ok', String(result.error?.message));
    t.ok((result.outputs['w']!['elapsed-ms'] as number) >= 150);
  });

  t.test('a file that appears later', async (t) => {
    const file = join(dir, 'ready');
    setTimeout(() => void writeFile(file, ''), 150);
    t.equal((await run([{ 'wait-for': { file: 'ready', timeout: '5s' } }], { cwd: dir })).status, 'ok');
  });

  t.test('a log line, read as the log grows', async (t) => {
    const log = join(dir, 'app.log');
    await writeFile(log, 'starting\n');
    setTimeout(() => void appendFile(log, 'listening on 8080\n'), 150);
    const result = await run([{ id: 'w', 'wait-for': { log: { path: log, pattern: 'listening on (\\d+)' }, timeout: '5s' } }]);
    t.equal(result.outputs['w']!['line'], 'listening on 8080');
  });

  t.test('timeouts and bad patterns say what did not happen', async (t) => {
    t.equal(
      (await run([{ 'wait-for': { exit: process.pid, timeout: '100ms' } }])).error?.message,
      `process ${process.pid} did not exit within 100ms`,
    );
    t.equal(
      (await run([{ 'wait-for': { file: join(dir, 'never'), timeout: '100ms' } }])).error?.message,
      `${join(dir, 'never')} did not appear within 100ms`,
    );
    t.equal(
      (await run([{ 'wait-for': { log: { path: 'x', pattern: '(' }, timeout: '1s' } }])).error?.message,
      'invalid pattern /(/: Invalid regular expression: /(/: Unterminated group',
    );
  });
});

t.test('sleep', async (t) => {
  const started = Date.now();
  t.equal((await run([{ sleep: { seconds: 0.1 } }])).status, 'ok');
  t.ok(Date.now() - started >= 90);
});

t.test('assert', async (t) => {
  const dir = await scratch(t);
  const file = join(dir, 'counter');
  await writeFile(file, '1\n2\n3\n');

  t.test('that: an expression', async (t) => {
    t.equal((await run([{ assert: { that: '${n} == 3' } }], { set: { n: '3' } })).status, 'ok');
    t.equal(
      (await run([{ assert: { that: '${n} != 3', message: 'n must not be 3' } }], { set: { n: '3.0' } })).error?.message,
      'n must not be 3: ${n} != 3 ("3.0" != "3")',
    );
  });

  t.test('file-contains: a regular expression whose ^ and $ match at lines', async (t) => {
    const result = await run([{ id: 'a', assert: { 'file-contains': { path: 'counter', pattern: '^2$' } } }], { cwd: dir });
    t.same(result.outputs['a'], { match: '2' });
    t.equal(
      (await run([{ assert: { 'file-contains': { path: file, pattern: '^4$' } } }])).error?.message,
      `assertion failed: ${file} has no match for /^4$/`,
    );
    t.equal(
      (await run([{ assert: { 'file-contains': { path: 'missing', pattern: 'x' } } }], { cwd: dir })).error?.message,
      'assertion failed: cannot read missing: no such file',
    );
  });
});
