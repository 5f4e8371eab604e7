// Dump and restore throughput of a 2 GiB process with its image in /dev/shm (memory-backed, so
// this measures ckpt, not a disk): the counter fixture with --alloc 2048 is dumped (which ends
// it) and restored with its PID, in this process (no CLI start-up in the numbers); the restored
// process must then tick "ok" (it checks a 16 MiB slice of its 2 GiB pattern per tick).
// Three rounds; best and median. Needs the fixtures built (node dist/test/setup.js) and root.
//   node dist/bench/restore.js [MiB (2048)] [rounds (3)]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ImageReader } from '../src/image/index.js';
import { dumpProcess } from '../src/state/dump.js';
import { restoreProcess } from '../src/state/restore.js';
import { readStat } from '../src/sys/proc.js';
import { fixture } from '../test/helpers/paths.js';
import { killAndReap, makeSubreaper, reapPid } from '../test/helpers/reap.js';

const mib = Number(process.argv[2] ?? 2048);
const rounds = Number(process.argv[3] ?? 3);
const counter = fixture('counter');
if (!fs.existsSync(counter)) throw new Error(`${counter} is not built: run node dist/test/setup.js`);

// The counter is started through a shell that exits at once, so that it is reparented to this
// subreaper without being a child_process child: the dump, run in this process, waits for it
// when it ends it, and Node would never see that exit. Restored processes are our children.
makeSubreaper();

function ppidOf(pid: number): number | undefined {
  try {
    return readStat(pid).ppid;
  } catch {
    return undefined;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const seconds = (from: bigint) => Number(process.hrtime.bigint() - from) / 1e9;

/** Waits for a log line at index >= from matching re; throws on a FAIL line or after timeoutMs. */
async function waitLine(log: string, re: RegExp, from: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n') : [];
    const fail = lines.find((l) => l.startsWith('FAIL'));
    if (fail) throw new Error(`counter failed: ${fail}`);
    const i = lines.findIndex((l, n) => n >= from && re.test(l));
    if (i >= 0) return i;
    if (Date.now() > deadline) throw new Error(`no line matching ${re} in ${log} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

interface Round { dumpS: number; restoreS: number; bytes: number }

async function round(n: number): Promise<Round> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-bench-restore-'));
  const shm = fs.mkdtempSync('/dev/shm/ckpt-bench-restore-');
  const image = `${shm}/image`;
  const log = `${work}/counter.log`;
  const pid = Number(
    execFileSync('sh', ['-c', '"$0" "$@" </dev/null >/dev/null 2>&1 & echo $!', counter, log, '--alloc', String(mib)], { encoding: 'utf8' }),
  );
  try {
    await waitLine(log, /^tick 1 ok/, 0, 120_000);

    const d0 = process.hrtime.bigint();
    const dumped = await dumpProcess({ pid, dir: image });
    const dumpS = seconds(d0);
    await reapPid(pid); // the dump killed it; the PID is free once it is reaped

    // Apart, for the record: reading and checksumming the whole image, which restore does first.
    const v0 = process.hrtime.bigint();
    const reader = await ImageReader.open(image);
    try {
      await reader.verify();
    } finally {
      await reader.close();
    }
    const verifyS = seconds(v0);

    const r0 = process.hrtime.bigint();
    await restoreProcess({ dir: image });
    const restoreS = seconds(r0);

    const from = fs.readFileSync(log, 'utf8').split('\n').length - 1;
    await waitLine(log, /^tick \d+ ok/, from, 10_000);
    await waitLine(log, /^tick \d+ ok/, from + 1, 10_000);

    const gb = dumped.bytes / 1e9;
    console.log(
      `round ${n}: ${(dumped.bytes / 2 ** 30).toFixed(2)} GiB of pages; dump ${dumpS.toFixed(3)} s = ${(gb / dumpS).toFixed(2)} GB/s, ` +
        `restore ${restoreS.toFixed(3)} s = ${(gb / restoreS).toFixed(2)} GB/s (its image check alone: ${verifyS.toFixed(3)} s); restored process ticks ok`,
    );
    return { dumpS, restoreS, bytes: dumped.bytes };
  } finally {
    // The original or its restored incarnation, whichever runs: our child either way (and
    // never another process that took the PID since).
    if (ppidOf(pid) === process.pid) await killAndReap(pid);
    fs.rmSync(shm, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const results: Round[] = [];
for (let i = 1; i <= rounds; i++) results.push(await round(i));

const rate = (r: Round, s: number) => r.bytes / 1e9 / s;
const summary = (what: string, s: (r: Round) => number) => {
  const rates = results.map((r) => rate(r, s(r))).sort((a, b) => a - b);
  const times = results.map(s).sort((a, b) => a - b);
  const mid = (xs: number[]) => xs[Math.floor(xs.length / 2)]!;
  return `${what}: best ${times[0]!.toFixed(3)} s (${rates[rates.length - 1]!.toFixed(2)} GB/s), median ${mid(times).toFixed(3)} s (${mid(rates).toFixed(2)} GB/s)`;
};
console.log(`restore bench, ${mib} MiB, ${rounds} rounds, image in /dev/shm, ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(2)}`);
console.log(summary('dump   ', (r) => r.dumpS));
console.log(summary('restore', (r) => r.restoreS));
