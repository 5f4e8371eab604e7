// python3 with a ThreadPoolExecutor (test/tree/pool.py) dumped in the middle of its work and
// restored: it finishes, every task done exactly once, with the result computed here too.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { makeSubreaper, packageRoot, reapPid, tmpdir } from '../helpers/index.js';
import { startProgram } from '../restore/util.js';
import { dump, restoreDetached, taskIds } from './util.js';

makeSubreaper();

const TASKS = 300;
const script = path.join(packageRoot, 'test', 'tree', 'pool.py');

/** digest(i) of pool.py, computed independently: 64 rounds of SHA-256, first 8 bytes little-endian. */
function digest(i: number): bigint {
  let h = createHash('sha256').update(`task ${i}`).digest();
  for (let r = 1; r < 64; r++) h = createHash('sha256').update(h).digest();
  return h.readBigUInt64LE(0);
}

function lines(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(0, -1);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

async function waitFor(file: string, pred: (lines: string[]) => boolean, timeoutMs: number, what: string): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const l = lines(file);
    if (pred(l)) return l;
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms; last lines:\n${l.slice(-5).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const doneLines = (l: string[]) => l.filter((x) => x.startsWith('done '));

t.test('python3 ThreadPoolExecutor dumped mid-work finishes correctly after restore', async (t) => {
  // The interpreter itself, not a wrapper script (pyenv shims exec it): its PID is the one dumped.
  const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  const dir = tmpdir(t);
  const log = path.join(dir, 'pool.log');
  const { pid, exited } = startProgram(t, python, ['-B', script, log, String(TASKS)], dir);

  await waitFor(log, (l) => doneLines(l).length >= 10, 10000, '10 tasks done');
  t.equal(lines(log)[0], `ready pid=${pid} tasks=${TASKS} workers=4`);
  const threads = taskIds(pid);
  t.equal(threads.length, 5, `the main thread and the 4 workers: ${threads.join(' ')}`);

  await dump(pid, `${dir}/image`);
  t.same(await exited, { code: null, signal: 9 }, 'the dump killed it');
  const atDump = doneLines(lines(log)).length;
  t.ok(atDump >= 10 && atDump < TASKS, `dumped mid-work: ${atDump} of ${TASKS} tasks done`);
  t.notOk(lines(log).some((l) => l.startsWith('RESULT')), 'no result yet');

  t.equal(await restoreDetached(`${dir}/image`), pid, 'restored with its PID');
  const all = await waitFor(log, (l) => l.some((x) => x.startsWith('RESULT')), 20000, 'RESULT line');
  t.same(await reapPid(pid), { code: 0, signal: null }, 'it exited 0');

  // "done <i> <value> thread=<tid>"
  const done = doneLines(all).map((l) => l.replace(' thread=', ' ').split(' '));
  t.equal(done.length, TASKS, `${TASKS} "done" lines: none lost, none repeated`);
  t.same([...new Set(done.map((d) => Number(d[1])))].sort((a, b) => a - b), [...Array(TASKS).keys()], 'every task once');
  t.ok(done.every((d) => BigInt(d[2]!) === digest(Number(d[1]))), 'every logged value is digest(i)');
  const workers = [...new Set(done.map((d) => Number(d[3])))].sort((a, b) => a - b);
  t.ok(workers.length === 4 && workers.every((w) => w !== pid && threads.includes(w)),
    `all done by the 4 worker threads seen before the dump, with their TIDs: ${workers.join(' ')}`);
  const sum = [...Array(TASKS).keys()].reduce((s, i) => (s + digest(i)) % (1n << 64n), 0n);
  t.equal(all.find((l) => l.startsWith('RESULT')), `RESULT ok ${sum}`, 'the result checked by the script and here');
});
