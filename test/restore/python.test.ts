// A real program nobody here wrote: CPython, with a 200k-entry dict and a generator suspended
// mid-iteration, dumped (ended) and restored; it finishes its walk and gets the right result.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import t from 'tap';
import { listThreads } from '../../src/sys/proc.js';
import { makeSubreaper, packageRoot, procSnapshot, tmpdir } from '../helpers/index.js';
import { dump, exeOf, fileLines, killRestoredAtTeardown, reapPid, restoreDetached, startProgram, until } from './util.js';

makeSubreaper();

const ENTRIES = 200_000;
const STEPS = 40;
const STEP_S = 0.1;
const script = path.join(packageRoot, 'test', 'restore', 'bigdict.py');

/** What the script must end with, computed here without Python. */
function expected(): { sha256: string; sum: bigint } {
  const hash = crypto.createHash('sha256');
  let sum = 0n;
  for (let i = 0; i < ENTRIES; i++) {
    const v = (BigInt(i) * 2654435761n) % 2n ** 32n;
    hash.update(`k${i}=${v};`);
    sum += v;
  }
  return { sha256: hash.digest('hex'), sum };
}

t.test('python3: a large dict and a generator mid-iteration survive dump and restore', async (t) => {
  const python = execFileSync('sh', ['-c', 'command -v python3'], { encoding: 'utf8' }).trim();
  const dir = tmpdir(t);
  const log = `${dir}/bigdict.log`;
  const prog = startProgram(t, python, [script, log, String(ENTRIES), String(STEPS), String(STEP_S)], dir);
  await until(() => fileLines(log).some((l) => /^step 5 /.test(l)), 15_000, 'step 5 of the python workload');
  t.same(listThreads(prog.pid), [prog.pid], 'python3 runs single-threaded');
  const exe = exeOf(prog.pid);
  const before = procSnapshot(prog.pid);

  await dump(prog.pid, `${dir}/image`);
  t.same(await prog.exited, { code: null, signal: 9 }, 'the dump ended the original interpreter');
  const stepsAtDump = fileLines(log).filter((l) => l.startsWith('step ')).length;
  t.ok(stepsAtDump < STEPS, `dumped mid-iteration, after step ${stepsAtDump} of ${STEPS}`);

  const { pid } = await restoreDetached(`${dir}/image`);
  killRestoredAtTeardown(t, pid);
  t.equal(pid, prog.pid, 'same PID');
  t.equal(exeOf(pid), exe, `runs ${exe} again`);
  t.equal(procSnapshot(pid).maps, before.maps, '/proc/PID/maps as before the dump');

  const status = await reapPid(pid, 15_000);
  t.same(status, { code: 0, signal: null }, 'the restored interpreter exits 0 by itself');
  const lines = fileLines(log);
  const steps = lines.filter((l) => l.startsWith('step ')).map((l) => Number(/^step (\d+)/.exec(l)![1]));
  t.same(steps, Array.from({ length: STEPS }, (_, i) => i + 1), 'every step once, in order, across the restore');
  const want = expected();
  t.equal(lines[lines.length - 1], `RESULT ok sha256=${want.sha256} sum=${want.sum}`, 'the result it computed is right');
});
