// The README's main command: the demo pipeline spawns a python3 workload, dumps it, restores it
// with its PID and checks that it counts on; then stops it. Nothing may be left behind.
import fs from 'node:fs';
import t from 'tap';
import { makeSubreaper, reapPid } from '../helpers/index.js';
import { ckpt } from './util.js';

// The restored workload is a child of `ckpt run`; once that exits, it is ours to reap.
makeSubreaper();

interface StepEnd { event: 'step-end'; id: string | null; kind: string; status: 'ok' | 'failed' | 'skipped'; outputs: Record<string, unknown> }

t.test('the demo dumps and restores its workload, which counts on, and cleans up', async (t) => {
  const run = await ckpt(['run', 'pipelines/demo.yaml', '--json']);
  const events = run.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { event: string });
  const ends = events.filter((e): e is StepEnd => e.event === 'step-end');
  const step = (id: string) => ends.find((e) => e.id === id);
  const workload = step('workload')?.outputs.pid as number;
  const scratch = step('scratch')?.outputs.stdout as string;
  t.teardown(() => {
    // Only on failure is there anything left to remove.
    if (typeof scratch === 'string' && scratch.startsWith('/tmp/ckpt-demo.')) fs.rmSync(scratch, { recursive: true, force: true });
  });
  t.equal(run.code, 0, `ckpt run pipelines/demo.yaml (${run.signal ?? 'no signal'}, ${run.ms.toFixed(0)} ms)\n${run.stderr}`);
  t.match(events.at(-1), { event: 'pipeline-end', status: 'ok', exit_code: 0 });
  t.ok(ends.every((e) => e.status === 'ok'), `every step ran ok: ${ends.map((e) => `${e.kind}:${e.status}`).join(' ')}`);
  t.ok(ends.some((e) => e.kind === 'dump') && ends.some((e) => e.kind === 'restore'), 'it dumps and restores');
  t.ok(Number.isInteger(workload) && workload > 1, `the workload's pid: ${workload}`);
  t.equal(step('restore')?.outputs.pid, workload, 'restored with its pid');
  t.ok((step('dump')?.outputs.bytes as number) > 0, 'the image holds memory');
  t.notOk(fs.existsSync(scratch), `its scratch directory ${scratch} is removed`);
  // Ended by the demo's last kill (SIGTERM): gone, or a zombie reparented to us to reap.
  const status = await reapPid(workload, 5000);
  t.ok(status === null || status.signal === 15, `the restored workload was stopped by the demo: ${JSON.stringify(status)}`);
  t.notOk(fs.existsSync(`/proc/${workload}`), 'nothing left running');
});
