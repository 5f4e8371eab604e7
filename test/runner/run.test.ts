// Running pipelines through the library API: outputs flowing between steps, failures,
// rollbacks, timeouts, interruption, events and progress.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { InterruptedError, runPipeline, runPipelineFile, type RunEvent, type StepDefinition } from '../../src/runner/index.js';
import { builtinSteps } from '../../src/steps/index.js';
import { fixtures, runYaml, scratch } from './helpers.js';

const env = { ...process.env, CKPT_TEST_VALUE: 'from the environment' };

t.test('outputs flow from step to step', async (t) => {
  const events: RunEvent[] = [];
  const result = await runPipelineFile(join(fixtures, 'flow.yaml'), {
    output: 'silent',
    env,
    set: { who: 'world', pause: '0.01' },
    onEvent: (event) => events.push(event),
  });
  t.equal(result.status, 'ok');
  t.equal(result.exitCode, 0);
  t.same(
    result.steps.map((step) => [step.id ?? step.kind, step.status]),
    [
      ['hello', 'ok'],
      ['count', 'ok'],
      ['assert', 'ok'],
      ['never', 'skipped'],
      ['soft', 'failed'],
      ['assert', 'ok'],
      ['env', 'ok'],
      ['typed', 'ok'],
    ],
  );
  t.same(result.outputs['hello'], { stdout: 'hello world', 'exit-code': 0 });
  t.same(result.outputs['soft'], { stdout: 'partial', 'exit-code': 3 }, 'a failed step keeps its outputs');
  t.equal(result.outputs['env']!['stdout'], 'from the environment');
  t.equal(result.steps[4]!.error, '"echo partial; exit 3" exited with code 3 (expected 0)');
  t.equal(result.steps[1]!.title, "exec[count]: printf '%s' 'hello world' | wc -c", 'titles show substituted values');
  t.same(result.rollbackErrors, []);
  const ends = events.filter((event) => event.event === 'step-end');
  t.equal(ends.length, 8);
  t.match(events.at(-1), { event: 'pipeline-end', status: 'ok', exit_code: 0 });
});

t.test('a failing step stops the pipeline and rolls back in reverse order', async (t) => {
  const dir = await scratch(t);
  const log = join(dir, 'log');
  const events: RunEvent[] = [];
  const result = await runPipelineFile(join(fixtures, 'rollback.yaml'), { output: 'silent', set: { log }, onEvent: (e) => events.push(e) });
  t.equal(result.status, 'failed');
  t.equal(result.exitCode, 1);
  t.equal(result.error?.message, '"echo it broke >&2; exit 4" exited with code 4 (expected 0): it broke');
  t.equal(result.steps.length, 3, 'the step after the failure did not run');
  t.equal(await readFile(log, 'utf8'), 'ran first\nran second\nundo second\nundo first\n');
  t.same(
    events.filter((e) => e.event === 'rollback-end').map((e) => (e.event === 'rollback-end' ? [e.index, e.error] : [])),
    [
      [1, null],
      [0, null],
    ],
  );
});

t.test('a step timeout fails the step and rolls back', async (t) => {
  const dir = await scratch(t);
  const log = join(dir, 'log');
  const started = Date.now();
  const result = await runPipelineFile(join(fixtures, 'interrupt.yaml'), { output: 'silent', set: { log, timeout: '300ms' } });
  t.equal(result.status, 'failed');
  t.equal(result.error?.message, 'timed out after 300ms');
  t.match(result.steps[2], { id: 'nap', status: 'failed', error: 'timed out after 300ms' });
  t.ok(result.steps[2]!.duration_ms >= 290 && Date.now() - started < 5000, `took ${result.steps[2]!.duration_ms}ms`);
  t.equal(await readFile(log, 'utf8'), 'ran first\nran second\nundo second\nundo first\n');
});

t.test('an interrupt stops the running step and rolls back', async (t) => {
  const dir = await scratch(t);
  const log = join(dir, 'log');
  const controller = new AbortController();
  const result = await runPipelineFile(join(fixtures, 'interrupt.yaml'), {
    output: 'silent',
    set: { log },
    signal: controller.signal,
    onEvent: (event) => {
      if (event.event === 'step-start' && event.id === 'nap') controller.abort(new InterruptedError('SIGINT'));
    },
  });
  t.equal(result.status, 'interrupted');
  t.equal(result.exitCode, 130);
  t.equal(result.error?.message, 'interrupted by SIGINT');
  t.equal(await readFile(log, 'utf8'), 'ran first\nran second\nundo second\nundo first\n');
});

t.test('an interrupt stops even a pipeline that continues on errors', async (t) => {
  const controller = new AbortController();
  const doc = {
    version: 1,
    name: 'soft',
    steps: [{ sleep: { seconds: 30 }, 'continue-on-error': true }, { exec: { run: 'echo next' } }],
  };
  setTimeout(() => controller.abort(new InterruptedError('SIGTERM')), 100);
  const result = await runPipeline(doc, { output: 'silent', signal: controller.signal });
  t.equal(result.status, 'interrupted');
  t.equal(result.exitCode, 143);
  t.equal(result.steps.length, 1);
});

t.test('a reference to a skipped step fails the step that uses it', async (t) => {
  const dir = await scratch(t);
  const { result } = await runYaml(
    dir,
    `version: 1
name: skipped output
steps:
  - id: maybe
    if: "0 == 1"
    exec: { run: echo hi }
  - exec: { run: "echo \${steps.maybe.stdout}" }
`,
  );
  t.equal(result.status, 'failed');
  t.equal(result.error?.message, "'${steps.maybe.stdout}' is not available: step 'maybe' was skipped");
});

t.test('params are checked again once references are substituted', async (t) => {
  const dir = await scratch(t);
  const { result } = await runYaml(dir, `version: 1\nname: typed\nsteps:\n  - sleep: { seconds: "\${pause}" }\n`, { set: { pause: 'soon' } });
  t.equal(result.status, 'failed');
  t.equal(result.error?.message, "sleep: after substituting references: 'seconds' must be number");
});

t.test('--json writes one event per line and nothing else', async (t) => {
  const dir = await scratch(t);
  const stdout = new PassThrough();
  let text = '';
  stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  await runYaml(dir, 'version: 1\nname: json\nsteps:\n  - id: a\n    exec: { run: "echo one; echo two" }\n', { output: 'json', stdout });
  const events = text
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as RunEvent);
  t.same(
    events.map((event) => event.event),
    ['pipeline-start', 'step-start', 'log', 'log', 'step-end', 'pipeline-end'],
  );
  t.match(events[0], { name: 'json', steps: 1 });
  t.match(events[4], { index: 0, id: 'a', kind: 'exec', status: 'ok', outputs: { stdout: 'one\ntwo', 'exit-code': 0 }, error: null });
  t.type((events[4] as { duration_ms: number }).duration_ms, 'number');
});

t.test('plain output: one line per event, rollbacks included', async (t) => {
  const dir = await scratch(t);
  const stdout = new PassThrough();
  let text = '';
  stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const log = join(dir, 'log');
  await runPipelineFile(join(fixtures, 'rollback.yaml'), { output: 'plain', stdout, set: { log }, env: { ...env, NO_COLOR: '1' } });
  t.match(text, /✔ exec: echo ran first >> '.*\/log' \[\d/);
  t.match(text, /✖ exec: echo it broke >&2; exit 4 \[FAILED: "echo it broke >&2; exit 4" exited with code 4 \(expected 0\): it broke\]/);
  t.match(text, /✔ rollback: exec: echo undo second .*\n(.*\n)*✔ rollback: exec: echo undo first/);
});

t.test('progress reaches the output at most 10 times a second; the last update always does', async (t) => {
  const copy: StepDefinition<{ chunks: number }> = {
    kind: 'copy',
    summary: 'Reports progress as fast as it can.',
    schema: { type: 'object', properties: { chunks: { type: 'integer' } }, required: ['chunks'], additionalProperties: false },
    async run(ctx, params) {
      for (let i = 1; i <= params.chunks; i++) ctx.progress(i * 4096, params.chunks * 4096, 'bytes');
    },
  };
  const events: RunEvent[] = [];
  const doc = { version: 1, name: 'progress', steps: [{ copy: { chunks: 10000 } }] };
  const result = await runPipeline(doc, { output: 'silent', steps: [...builtinSteps, copy], onEvent: (e) => events.push(e) });
  t.equal(result.status, 'ok');
  const progress = events.filter((event) => event.event === 'progress');
  t.ok(progress.length >= 2 && progress.length <= 3, `${progress.length} updates`);
  t.match(progress[0], { done: 4096, total: 40960000, unit: 'bytes' });
  t.match(progress.at(-1), { done: 40960000, total: 40960000 });
});

t.test('a rollback that fails is reported and the others still run', async (t) => {
  const dir = await scratch(t);
  const log = join(dir, 'log');
  const { result } = await runYaml(
    dir,
    `version: 1
name: rollback fails
steps:
  - exec: { run: "true", rollback: "echo undo first >> ${log}" }
  - exec: { run: "true", rollback: "echo cannot >&2; exit 9" }
  - exec: { run: "false" }
`,
  );
  t.equal(result.status, 'failed');
  t.same(
    result.rollbackErrors.map((error) => error.message),
    ['"echo cannot >&2; exit 9" exited with code 9: cannot'],
  );
  t.equal(await readFile(log, 'utf8'), 'undo first\n');
});

t.test('--dry-run validates and describes the plan without running anything', async (t) => {
  const dir = await scratch(t);
  const stdout = new PassThrough();
  let text = '';
  stdout.on('data', (chunk: Buffer) => (text += chunk.toString()));
  const marker = join(dir, 'ran');
  const { result, events } = await runYaml(
    dir,
    `version: 1
name: plan
vars: { target: ${marker} }
steps:
  - id: touch
    exec: { run: "touch \${target}" }
    timeout: 2m
  - assert: { that: "\${steps.touch.exit-code} == 0" }
    if: "\${steps.touch.exit-code} == 0"
    continue-on-error: true
`,
    { dryRun: true, output: 'plain', stdout },
  );
  t.equal(result.exitCode, 0);
  t.same(events.map((event) => event.event), ['plan']);
  t.equal(
    text,
    [
      `Plan for 'plan' (${join(dir, 'pipeline.yaml')}): 2 steps`,
      `  1. exec[touch]: touch ${marker}`,
      `       {"run":"touch ${marker}"}`,
      '       timeout 2m00s',
      '  2. assert: ${steps.touch.exit-code} == 0',
      '       {"that":"${steps.touch.exit-code} == 0"}',
      '       if ${steps.touch.exit-code} == 0, continue on error',
      '',
    ].join('\n'),
  );
  await t.rejects(readFile(marker), { code: 'ENOENT' });
});
