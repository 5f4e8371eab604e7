// A dump interrupted by SIGINT or SIGTERM, at any point, leaves the target running as before:
// not stopped, not traced, same memory map, still passing its self-checks; and it leaves no
// image behind. A dump refused for an unsupported fd leaves the target the same way.
import fs from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startFixture, tmpdir, type FixtureProcess } from '../helpers/index.js';
import { ckpt, procState, rawMaps, signalMasks, spawnCkpt, unsupportedErrors, type CkptProcess, type CkptRun } from './helpers.js';

const RUNS = 24;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Phase = 'startup' | 'freeze' | 'copy' | 'finish' | 'exited';

/** How far the dump had got when the signal was sent, from the --json events read by then. */
function phaseOf(p: CkptProcess): Phase {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return 'exited';
  const seen = new Set(p.events.map((e) => e.event.event));
  if (seen.has('step-end') || seen.has('log')) return 'finish';
  if (seen.has('progress')) return 'copy';
  if (seen.has('pipeline-start')) return 'freeze';
  return 'startup';
}

/** The target is running (not stopped, not traced) with the same maps, and ticks on. */
async function expectUntouched(t: Test, fx: FixtureProcess, maps: string, what: string): Promise<void> {
  const st = procState(fx.pid);
  t.ok(!['t', 'T'].includes(st.state), `${what}: target not stopped (state ${st.state})`);
  t.equal(st.tracerPid, 0, `${what}: target not traced`);
  t.equal(rawMaps(fx.pid), maps, `${what}: target's maps unchanged`);
  await fx.waitTicks(2);
}

t.test(`SIGINT/SIGTERM at ${RUNS} random points of a dump never harm the target`, async (t) => {
  const fx = await startFixture('counter', ['--alloc', '128'], { t, readyTimeoutMs: 10000 });
  await fx.waitTicks(2);
  const maps = rawMaps(fx.pid);
  const base = tmpdir(t, 'ckpt-interrupt-test-');

  // One whole dump first, to spread the signals over its length on this machine.
  const whole = spawnCkpt(['dump', '-t', String(fx.pid), '-D', path.join(base, 'whole'), '--leave-running', '--json']);
  const wholeRun = await whole.done;
  t.equal(wholeRun.code, 0, `an uninterrupted dump succeeds ${wholeRun.stderr}`);
  const at = (event: string) => whole.events.find((e) => e.event.event === event)?.at ?? NaN;
  const span = at('pipeline-end');
  t.ok(span > 0, 'its events were read');
  t.comment(`uninterrupted dump: pipeline-start at ${at('pipeline-start')} ms, first progress ${at('progress')} ms, end ${span} ms`);
  fs.rmSync(path.join(base, 'whole'), { recursive: true });
  await expectUntouched(t, fx, maps, 'uninterrupted');

  // Each signal is sent a random delay after a point of the dump: after the spawn (while Node
  // starts, before ckpt has its signal handlers), after pipeline-start (the freeze and the
  // reading of /proc), after the first progress event (pages being copied; up to the rest of
  // the uninterrupted dump's length), and after the dump's log line (the image is committed).
  const copyMs = span - at('progress');
  const plan: Array<{ after: string | null; maxMs: number }> = [
    ...Array.from({ length: 4 }, () => ({ after: null, maxMs: Math.min(500, at('pipeline-start')) })),
    ...Array.from({ length: 6 }, () => ({ after: 'pipeline-start', maxMs: 80 })),
    ...Array.from({ length: RUNS - 14 }, () => ({ after: 'progress', maxMs: copyMs })),
    ...Array.from({ length: 4 }, () => ({ after: 'log', maxMs: 20 })),
  ];
  plan.sort(() => Math.random() - 0.5);

  const phases: Record<Phase, number> = { startup: 0, freeze: 0, copy: 0, finish: 0, exited: 0 };
  const outcomes: string[] = [];
  let interruptedWhileCopying = 0;
  for (const [i, { after, maxMs }] of plan.entries()) {
    const sig: NodeJS.Signals = i % 2 === 0 ? 'SIGINT' : 'SIGTERM';
    const dir = path.join(base, `run-${i}`);
    const p = spawnCkpt(['dump', '-t', String(fx.pid), '-D', dir, '--leave-running', '--json']);
    if (after !== null) await p.waitEvent(after);
    const delay = Math.floor(Math.random() * maxMs);
    await sleep(delay);
    const phase = phaseOf(p);
    phases[phase]++;
    p.child.kill(sig);
    const r = await p.done;
    const what = `run ${i} (${sig} ${delay} ms after ${after ?? 'spawn'}, ${phase})`;
    const manifest = fs.existsSync(path.join(dir, 'manifest.json'));
    outcomes.push(`${after ?? 'spawn'}+${delay}ms/${phase}/${r.signal ?? r.code}`);

    if (r.signal !== null) {
      // Killed by the signal itself: before ckpt had its handlers (it had done nothing), or after
      // it took them down at the end (the dump was complete).
      t.equal(r.signal, sig, `${what}: killed by the signal it was sent`);
      if (phase === 'startup') t.notOk(fs.existsSync(dir), `${what}: killed while starting: no image directory`);
      else t.ok(manifest, `${what}: killed by the signal after the pipeline, with a complete image`);
    } else if (r.code === 0) {
      t.ok(manifest, `${what}: exit 0 means a complete image`);
    } else {
      t.equal(r.code, 128 + constants.signals[sig], `${what}: exit code of an interrupt ${r.stdout.slice(-300)}${r.stderr}`);
      t.notOk(manifest, `${what}: interrupted, so no manifest.json`);
      t.notOk(fs.existsSync(dir), `${what}: interrupted, so no image directory left`);
      if (phase === 'copy') interruptedWhileCopying++;
    }
    await expectUntouched(t, fx, maps, what);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  t.comment(`phases when the signal was sent: ${JSON.stringify(phases)}`);
  t.comment(`after+delay/phase/exit: ${outcomes.join(' ')}`);
  t.ok(interruptedWhileCopying > 0, `some dumps were interrupted while copying pages (${interruptedWhileCopying})`);
  t.ok(phases.freeze > 0, 'some signals landed before the first page was copied');
});

t.test('ckpt killed outright (SIGKILL) in the middle of a dump: the target runs on as before', async (t) => {
  const fx = await startFixture('counter', ['--alloc', '128'], { t, readyTimeoutMs: 10000 });
  await fx.waitTicks(2);
  const blocked = signalMasks(fx.pid).SigBlk;
  const base = tmpdir(t, 'ckpt-sigkill-test-');
  const outcomes: string[] = [];
  // While pages are copied (after the first progress event), the longest part of a dump, each
  // thread holds its own registers and mask again, so the kernel lets it go on as it was when
  // ckpt dies. (Killed during one of ckpt's remote syscalls, a thread would go on from ckpt's
  // registers: that window of microseconds per syscall stays, as it does in CRIU.)
  for (let i = 0; i < 6; i++) {
    const after = 'progress';
    const p = spawnCkpt(['dump', '-t', String(fx.pid), '-D', path.join(base, `run-${i}`), '--leave-running', '--json']);
    await p.waitEvent(after);
    const delay = Math.floor(Math.random() * 100);
    await sleep(delay);
    const phase = phaseOf(p);
    p.child.kill('SIGKILL');
    await p.done;
    outcomes.push(`${after}+${delay}ms/${phase}`);
    const st = procState(fx.pid);
    t.ok(!['t', 'T', 'Z'].includes(st.state) && st.tracerPid === 0, `run ${i} (${after}+${delay} ms, ${phase}): target running, not traced`);
    t.equal(signalMasks(fx.pid).SigBlk, blocked, `run ${i}: its blocked signals as before`);
    await fx.waitTicks(2);
  }
  t.comment(`after+delay/phase: ${outcomes.join(' ')}`);
  t.equal(fx.child.exitCode, null, 'the target is alive');
});

t.test('an unsupported fd: a clear error and an untouched target', async (t) => {
  const fx = await startFixture('unsupported', [], { t });
  await fx.waitTicks(2);
  const maps = rawMaps(fx.pid);
  const dir = path.join(tmpdir(t, 'ckpt-unsupported-test-'), 'image');
  const r = await ckpt(['dump', '-t', String(fx.pid), '-D', dir]);
  t.equal(r.code, 1, 'exit code 1: the step failed');
  const prefix = `ckpt: step 1 'dump: pid ${fx.pid} → ${dir}' failed: `;
  const line = r.stderr.split('\n').find((l) => l.startsWith(prefix)) ?? r.stderr;
  const expected = unsupportedErrors(fx.readyInfo, fx.pid);
  t.ok(expected.includes(line.slice(prefix.length)), `names the fd, its kind and the process: ${line}`);
  t.notOk(fs.existsSync(dir), 'no image directory left');
  await expectUntouched(t, fx, maps, 'unsupported');
  t.equal(fx.child.exitCode, null, 'not killed although --leave-running was not given');

  // With --json the same error is in the events.
  const j = await ckpt(['dump', '-t', String(fx.pid), '-D', dir, '--json']);
  t.equal(j.code, 1);
  const end = j.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).at(-1);
  t.match(end, { event: 'pipeline-end', status: 'failed', exit_code: 1, error: line.slice(prefix.length) }, 'the same error in --json');
  await expectUntouched(t, fx, maps, 'unsupported, --json');
});

/**
 * Starts `ckpt dump` into `dir` (created first, so that it can be watched) and sends SIGINT the
 * moment the manifest's temporary file appears: the dump is then committing its image.
 */
async function interruptCommit(pid: number, dir: string, extra: string[]): Promise<{ run: CkptRun; sent: boolean }> {
  fs.mkdirSync(dir, { mode: 0o700 });
  const p = spawnCkpt(['dump', '-t', String(pid), '-D', dir, ...extra]);
  let sent = false;
  const watcher = fs.watch(dir, (_event, name) => {
    if (name === '.manifest.json.tmp' && !sent) sent = p.child.kill('SIGINT');
  });
  try {
    return { run: await p.done, sent };
  } finally {
    watcher.close();
  }
}

t.test('a signal while the image is committed: a complete dump or none at all', async (t) => {
  const base = tmpdir(t, 'ckpt-commit-test-');

  // --leave-running: the target runs on either way; exit 0 with an image, or 130 without one.
  const fx = await startFixture('counter', ['--alloc', '64'], { t });
  await fx.waitTicks(2);
  const maps = rawMaps(fx.pid);
  const dir = path.join(base, 'leave-running');
  const { run, sent } = await interruptCommit(fx.pid, dir, ['--leave-running']);
  t.ok(sent, 'SIGINT sent while the manifest was being written');
  const manifest = fs.existsSync(path.join(dir, 'manifest.json'));
  t.same({ code: run.code, manifest }, manifest ? { code: 0, manifest } : { code: 130, manifest }, `exit ${run.code} ${run.stderr.trim()}: exit 130 only without an image, exit 0 only with one`);
  if (!manifest) t.same(fs.readdirSync(dir), [], 'interrupted: nothing left in the image directory');
  await expectUntouched(t, fx, maps, 'leave-running');

  // Without --leave-running the target ends only if the dump succeeded (exit 0); a dump that
  // says it was interrupted must leave it running.
  const fx2 = await startFixture('counter', ['--alloc', '64'], { t });
  await fx2.waitTicks(2);
  const dir2 = path.join(base, 'end');
  const second = await interruptCommit(fx2.pid, dir2, []);
  t.ok(second.sent, 'SIGINT sent while the manifest was being written');
  const manifest2 = fs.existsSync(path.join(dir2, 'manifest.json'));
  const ended = await Promise.race([fx2.exited.then(() => true), sleep(500).then(() => false)]);
  t.same(
    { code: second.run.code, manifest: manifest2, ended },
    second.run.code === 0 ? { code: 0, manifest: true, ended: true } : { code: 130, manifest: false, ended: false },
    `exit ${second.run.code} (${second.run.stderr.trim()}), image ${manifest2 ? 'complete' : 'absent'}, target ${ended ? 'killed' : 'running'}`,
  );
});
