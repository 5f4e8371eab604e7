// The freeze and dump steps compose in a pipeline: `ckpt run` with a freeze step, something in
// between while the process is held, then a dump that takes the frozen process. A pipeline
// that fails after the freeze thaws the process in its rollback.
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startFixture, tmpdir, type FixtureProcess } from '../helpers/index.js';
import { ckpt, expectPrivate, procState, rawMaps, unsupportedErrors } from './helpers.js';

type Event = Record<string, any>;
const events = (stdout: string): Event[] => stdout.trim().split('\n').map((l) => JSON.parse(l) as Event);
const stepEnds = (evs: Event[]) => evs.filter((e) => e.event === 'step-end');

function writePipeline(dir: string, body: string): string {
  const file = path.join(dir, 'pipeline.yaml');
  fs.writeFileSync(file, `version: 1\nname: freeze-dump\nsteps:\n${body}`);
  return file;
}

// Reads the target's state from inside the pipeline, while the freeze step holds it.
const probe = `  - id: held
    exec: { run: "grep -E '^(State|TracerPid):' /proc/\${pid}/status | tr -s '\\\\t' ' '" }
`;

async function expectRunning(t: Test, fx: FixtureProcess, maps: string): Promise<void> {
  const st = procState(fx.pid);
  t.ok(!['t', 'T'].includes(st.state), `target running (state ${st.state})`);
  t.equal(st.tracerPid, 0, 'target not traced');
  t.equal(rawMaps(fx.pid), maps, 'target maps unchanged');
  await fx.waitTicks(3);
}

t.test('freeze, then dump --leave-running of the frozen process', async (t) => {
  const fx = await startFixture('counter', ['--alloc', '16'], { t });
  await fx.waitTicks(2);
  const maps = rawMaps(fx.pid);
  const dir = tmpdir(t, 'ckpt-pipeline-test-');
  const file = writePipeline(dir, `  - id: freeze
    freeze: { pid: "\${pid}" }
${probe}  - id: dump
    dump: { pid: "\${pid}", dir: image, leave-running: true }
  - assert: { that: "\${steps.dump.pid} == \${pid}" }
`);
  const run = await ckpt(['run', file, '--set', `pid=${fx.pid}`, '--json']);
  t.equal(run.code, 0, `pipeline succeeds ${run.stderr}`);
  const ends = stepEnds(events(run.stdout));
  t.same(ends.map((e) => [e.kind, e.status]), [['freeze', 'ok'], ['exec', 'ok'], ['dump', 'ok'], ['assert', 'ok']]);
  t.same(ends[0].outputs, { pid: fx.pid, processes: 1, threads: 1 }, 'freeze outputs');
  t.match(ends[1].outputs.stdout, /^State: t \(tracing stop\)\nTracerPid: [1-9]\d*$/, 'held in a ptrace stop between the steps');
  t.match(ends[2].outputs, { pid: fx.pid, dir: path.join(dir, 'image'), threads: 1 }, 'dump outputs');
  t.ok(ends[2].outputs.bytes >= 16 << 20, `dump saved the 16 MiB it allocated (${ends[2].outputs.bytes} bytes)`);
  expectPrivate(t, path.join(dir, 'image'));
  const show = await ckpt(['show', path.join(dir, 'image'), '--json']);
  t.equal(show.code, 0, 'the image reads back');
  t.equal(JSON.parse(show.stdout).manifest.root_pid, fx.pid);
  await expectRunning(t, fx, maps);
});

t.test('a step failing after the freeze: the rollback thaws the process', async (t) => {
  const fx = await startFixture('counter', [], { t });
  await fx.waitTicks(2);
  const maps = rawMaps(fx.pid);
  const dir = tmpdir(t, 'ckpt-pipeline-test-');
  const file = writePipeline(dir, `  - freeze: { pid: "\${pid}" }
${probe}  - exec: { run: "exit 3" }
  - dump: { pid: "\${pid}", dir: image, leave-running: true }
`);
  const run = await ckpt(['run', file, '--set', `pid=${fx.pid}`, '--json']);
  t.equal(run.code, 1, 'pipeline fails');
  const evs = events(run.stdout);
  t.same(stepEnds(evs).map((e) => [e.kind, e.status]), [['freeze', 'ok'], ['exec', 'ok'], ['exec', 'failed']], 'the dump never ran');
  t.match(stepEnds(evs)[1].outputs.stdout, /^State: t/, 'it was held');
  t.match(evs.filter((e) => e.event.startsWith('rollback')), [{ event: 'rollback-start', description: `thaw ${fx.pid}` }, { event: 'rollback-end' }]);
  t.notOk(fs.existsSync(path.join(dir, 'image')), 'no image');
  await expectRunning(t, fx, maps);
});

t.test('freeze, then a dump that fails (unsupported fd): the process is thawed, no image', async (t) => {
  const fx = await startFixture('unsupported', [], { t });
  await fx.waitTicks(2);
  const maps = rawMaps(fx.pid);
  const dir = tmpdir(t, 'ckpt-pipeline-test-');
  const file = writePipeline(dir, `  - freeze: { pid: "\${pid}" }
  - dump: { pid: "\${pid}", dir: image }
`);
  const run = await ckpt(['run', file, '--set', `pid=${fx.pid}`]);
  t.equal(run.code, 1, 'pipeline fails');
  const failed = /failed: (.*)$/m.exec(run.stderr)?.[1];
  t.ok(unsupportedErrors(fx.readyInfo, fx.pid).includes(failed ?? ''), `the dump step says which fd: ${failed}`);
  t.notOk(fs.existsSync(path.join(dir, 'image')), 'no image');
  await expectRunning(t, fx, maps);
});
