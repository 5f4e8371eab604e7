// The command line, run as users run it: `node bin/ckpt.js ...` in a separate process.
import { execFileSync, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { main } from '../../src/cli.js';
import { COMMANDS, composePipelineSchema } from '../../src/runner/index.js';
import { builtinSteps } from '../../src/steps/index.js';
import { bin, cli, jsonLines, root, scratch, userEnv } from './helpers.js';

const version = (JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string }).version;

t.test('--version, --help and help for each command', async (t) => {
  t.same(await cli(['--version']), { code: 0, stdout: `${version}\n`, stderr: '' });
  const help = await cli(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /^ckpt .*\n\nUsage:\n {2}ckpt run FILE/);
  t.match(help.stdout, /\n {2}wait-for +Wait until/);
  t.match(help.stdout, /Step kinds: assert, check, dump, exec, freeze, restore, show, sleep, spawn, wait-for/);
  const bare = await cli([]);
  t.equal(bare.code, 2, 'no command is a usage error');
  t.equal(bare.stderr, help.stdout);
  const run = await cli(['run', '--help']);
  t.match(run.stdout, /^Usage: ckpt run FILE \[options\]\n/);
  t.match(run.stdout, /--set KEY=VALUE +set a variable; overrides vars: \(repeatable\)/);
  t.same(await cli(['help', 'run']), run);
  const waitFor = await cli(['wait-for', '--help']);
  t.match(waitFor.stdout, /^Usage: ckpt wait-for \[options\]\n\nWait until .*\nRuns the 'wait-for' step as a one-step pipeline\./);
  t.match(waitFor.stdout, /-t, --timeout DURATION +give up after this long, e.g. 30s \(required\)/);
  t.match((await cli(['schema', '--help'])).stdout, /^Usage: ckpt schema\n/);
});

t.test('usage errors exit with 2 and point at the help', async (t) => {
  t.same(await cli(['rn', 'x.yaml']), {
    code: 2,
    stdout: '',
    stderr: "ckpt: unknown command 'rn'; did you mean 'run'?\nSee 'ckpt --help'.\n",
  });
  t.same(await cli(['run', 'x.yaml', '--jsno']), {
    code: 2,
    stdout: '',
    stderr: "ckpt run: unknown option '--jsno'; did you mean '--json'?\nSee 'ckpt run --help'.\n",
  });
  t.match(await cli(['run']), { code: 2, stderr: 'ckpt run: missing pipeline FILE\n' });
  t.match(await cli(['run', 'a.yaml', '--set', 'novalue']), { code: 2, stderr: "ckpt run: --set needs KEY=VALUE (got 'novalue')\n" });
  t.match(await cli(['wait-for', '--exit', '1']), { code: 2, stderr: 'ckpt wait-for: missing required option -t/--timeout\n' });
  t.match(await cli(['wait-for', '--exit', 'abc', '-t', '1s']), { code: 2, stderr: "ckpt wait-for: option --exit needs an integer (got 'abc')\n" });
  t.match(await cli(['wait-for', '-t', '1s']), { code: 2, stderr: "ckpt wait-for: wait-for: needs one of 'port', 'file', 'log', 'exit'\n" });
});

t.test('`ckpt schema` prints the composed pipeline schema', async (t) => {
  const { code, stdout } = await cli(['schema']);
  t.equal(code, 0);
  t.same(JSON.parse(stdout), composePipelineSchema(builtinSteps));
});

t.test('an invalid pipeline: every problem on stderr, exit code 2, no stack trace', async (t) => {
  const file = 'test/runner/pipelines/invalid/unknown-option.yaml';
  const result = await cli(['run', file]);
  t.equal(result.code, 2);
  t.equal(result.stdout, '');
  t.equal(
    result.stderr,
    `${file}:4:13: exec: unknown option 'rnu'; did you mean 'run'? (allowed: run, cwd, env, expect-exit, rollback)\n` +
      `${file}:8:7: wait-for: unknown option 'interval' (allowed: port, file, log, exit, timeout)\n`,
  );
  const json = await cli(['run', file, '--json']);
  t.equal(json.code, 2);
  t.match(jsonLines(json.stdout), [{ event: 'invalid', problems: [{ file, line: 4, col: 13 }, { file, line: 8, col: 7 }] }]);
  t.match(await cli(['run', 'no/such.yaml']), { code: 2, stderr: 'no/such.yaml: cannot read pipeline file: no such file\n' });
});

t.test('a failing step: exit code 1 and one line saying which step and why', async (t) => {
  const dir = await scratch(t);
  const log = join(dir, 'log');
  const result = await cli(['run', 'test/runner/pipelines/rollback.yaml', '--set', `log=${log}`]);
  t.equal(result.code, 1);
  t.equal(
    result.stderr,
    `ckpt: step 3 'exec: echo it broke >&2; exit 4' failed: "echo it broke >&2; exit 4" exited with code 4 (expected 0): it broke\n`,
  );
  t.notMatch(result.stdout, /succeeded/);
  const debug = await cli(['run', 'test/runner/pipelines/rollback.yaml', '--set', `log=${log}`, '--debug']);
  t.match(debug.stderr, /^ckpt: step 3 .* failed: StepError: .*\n {4}at /, '--debug shows the stack');
});

t.test('--json: every line of stdout is a JSON event', async (t) => {
  const result = await cli(['run', 'test/runner/pipelines/flow.yaml', '--json', '--set', 'who=there'], {
    env: { ...process.env, CKPT_TEST_VALUE: 'x' },
  });
  t.equal(result.code, 0, result.stderr);
  const events = jsonLines(result.stdout);
  t.match(events[0], { event: 'pipeline-start', name: 'flow', steps: 8 });
  t.match(events.at(-1), { event: 'pipeline-end', status: 'ok', exit_code: 0 });
  t.equal(events.filter((event) => event.event === 'step-start').length, 8);
  t.match(
    events.find((event) => event.event === 'step-end' && event.id === 'hello'),
    { outputs: { stdout: 'hello there', 'exit-code': 0 }, error: null },
  );
});

/** Starts a pipeline that sleeps; sends `signal` once the sleep has started. */
async function interrupt(t: { teardown(fn: () => unknown): void }, signal: NodeJS.Signals) {
  const dir = await scratch(t);
  const log = join(dir, 'log');
  const child = spawn(process.execPath, [bin, 'run', 'test/runner/pipelines/interrupt.yaml', '--json', '--set', `log=${log}`], {
    cwd: root,
    env: userEnv(),
  });
  let stdout = '';
  let stderr = '';
  let sent = false;
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    // Once: a second signal means "exit now, skip the rollbacks".
    if (!sent && stdout.includes('"event":"step-start","index":2')) {
      sent = true;
      child.kill(signal);
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, events: jsonLines(stdout), stderr, log: await readFile(log, 'utf8') };
}

t.test('SIGINT stops the pipeline and runs the rollbacks in reverse order', async (t) => {
  const run = await interrupt(t, 'SIGINT');
  t.equal(run.code, 130);
  t.equal(run.log, 'ran first\nran second\nundo second\nundo first\n');
  t.equal(run.stderr, "ckpt: interrupted by SIGINT during step 3 'sleep[nap]: 60s'\n");
  t.same(
    run.events.filter((event) => event.event === 'rollback-start').map((event) => (event as { index: number }).index),
    [1, 0],
  );
  t.match(run.events.at(-1), { event: 'pipeline-end', status: 'interrupted', exit_code: 130, error: 'interrupted by SIGINT' });
});

t.test('SIGTERM does the same', async (t) => {
  const run = await interrupt(t, 'SIGTERM');
  t.equal(run.code, 143);
  t.equal(run.log, 'ran first\nran second\nundo second\nundo first\n');
});

t.test('the demo pipeline runs', async (t) => {
  const result = await cli(['run', 'pipelines/demo.yaml']);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, /pipeline 'demo' succeeded in /);
});

t.test('--dry-run prints the plan and runs nothing', async (t) => {
  const result = await cli(['run', 'pipelines/demo.yaml', '--dry-run']);
  t.equal(result.code, 0);
  t.match(result.stdout, /^Plan for 'demo' \(pipelines\/demo\.yaml\): 13 steps\n {2}1\. exec\[scratch\]: mktemp -d/);
  const json = await cli(['run', 'pipelines/demo.yaml', '--dry-run', '--json']);
  t.match(jsonLines(json.stdout), [{ event: 'plan', name: 'demo', steps: Array(13).fill({}) }]);
});

t.test('`ckpt wait-for` waits for a process that is not its child', async (t) => {
  // The shell exits at once; its background sleep is orphaned, so ckpt cannot waitpid() it.
  const pid = execFileSync('/bin/sh', ['-c', 'sleep 0.3 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' }).trim();
  const result = await cli(['wait-for', '--exit', pid, '-t', '10s']);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, new RegExp(`✔ wait-for: exit of pid ${pid} `));
  const closed = await cli(['wait-for', '--port', '127.0.0.1:1', '--timeout', '200ms']);
  t.equal(closed.code, 1);
  t.equal(closed.stderr, "ckpt: step 1 'wait-for: port 127.0.0.1:1' failed: port 127.0.0.1:1 did not open within 200ms\n");
});

t.test('a command that prints its result keeps stdout for it', async (t) => {
  // An entry like the ones `show` and `check` add, run through the same path.
  COMMANDS.push({
    name: 'test-echo',
    summary: 'Echo a word',
    step: 'exec',
    flags: [],
    positionals: [{ name: 'WORD', param: 'run', type: 'string', description: 'a command', required: true }],
    print: (outputs, { json }) => (json ? `${JSON.stringify({ said: outputs['stdout'] })}\n` : `said: ${String(outputs['stdout'])}\n`),
  });
  t.teardown(() => void COMMANDS.pop());
  const capture = () => {
    const stream = new PassThrough();
    const text = { value: '' };
    stream.on('data', (chunk: Buffer) => (text.value += chunk.toString()));
    return { stream, text };
  };
  const out = capture();
  const err = capture();
  t.equal(await main(['test-echo', 'echo hi'], { stdout: out.stream, stderr: err.stream }), 0);
  t.equal(out.text.value, 'said: hi\n');
  t.match(err.text.value, /✔ exec: echo hi/, 'the task list went to stderr');
  const jsonOut = capture();
  t.equal(await main(['test-echo', 'echo hi', '--json'], { stdout: jsonOut.stream, stderr: err.stream }), 0);
  t.equal(jsonOut.text.value, '{"said":"hi"}\n', '--json prints only the result');
});
