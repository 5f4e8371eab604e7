// Dump throughput: a process with 2 GiB of dirtied anonymous memory (the counter fixture with
// --alloc, which writes a pattern into all of it) dumped with dumpProcess into /dev/shm
// (memory-backed, so this measures ckpt, not a disk). Each run dumps the same process with
// leave-running into a fresh image directory, removed afterwards. Usage:
//   node dist/bench/dump.js [MiB (2048)] [runs (3)]
// The fixture must be built (node dist/test/setup.js); it is built here when it is missing.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadSchemas } from '../src/image/index.js';
import { dumpProcess } from '../src/state/dump.js';

const mib = Number(process.argv[2] ?? 2048);
const runs = Number(process.argv[3] ?? 3);
if (!Number.isInteger(mib) || mib < 1 || !Number.isInteger(runs) || runs < 1) {
  console.error('usage: node dist/bench/dump.js [MiB (2048)] [runs (3)]');
  process.exit(2);
}

// This file runs as dist/bench/dump.js.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const counter = path.join(root, 'test/fixtures/bin/counter');
if (!fs.existsSync(counter)) execFileSync(process.execPath, [path.join(root, 'dist/test/setup.js')], { stdio: 'inherit' });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const work = fs.mkdtempSync('/dev/shm/ckpt-bench-');
const log = path.join(work, 'counter.log');
const child = spawn(counter, [log, '--alloc', String(mib)], { detached: true, stdio: 'ignore' });
const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

async function waitReady(timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    if (/^FAIL/m.test(text)) throw new Error(`counter failed: ${text.trim()}`);
    if (/^tick 1 ok/m.test(text)) return;
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`counter exited: ${text.trim()}`);
    if (Date.now() > deadline) throw new Error(`counter not ready within ${timeoutMs} ms`);
    await sleep(20);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

try {
  await waitReady(60_000);
  // Compiling the schemas is a one-time cost per process (~0.1 s), kept out of the timings.
  loadSchemas();
  const rates: number[] = [];
  for (let i = 1; i <= runs; i++) {
    const dir = path.join(work, `image-${i}`);
    const cpu = process.cpuUsage();
    const start = process.hrtime.bigint();
    const result = await dumpProcess({ pid: child.pid!, dir, leaveRunning: true });
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const used = process.cpuUsage(cpu);
    const rate = result.bytes / 1e9 / seconds;
    rates.push(rate);
    console.log(
      `dump ${i}/${runs}: ${result.bytes} bytes (${(result.bytes / 2 ** 30).toFixed(2)} GiB) in ${seconds.toFixed(3)} s = ` +
        `${rate.toFixed(2)} GB/s; CPU ${((used.user + used.system) / 1e6).toFixed(2)} s`,
    );
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // The dumped process must still run and pass its checks.
  const lastTick = () => Number([...fs.readFileSync(log, 'utf8').matchAll(/^tick (\d+) ok/gm)].at(-1)?.[1] ?? 0);
  const before = lastTick();
  await sleep(300);
  const text = fs.readFileSync(log, 'utf8');
  if (/^FAIL/m.test(text)) throw new Error(`counter failed after the dumps: ${text.match(/^FAIL.*$/m)![0]}`);
  if (lastTick() <= before) throw new Error('counter stopped ticking after the dumps');
  console.log(`dump of ${mib} MiB into /dev/shm: best ${Math.max(...rates).toFixed(2)} GB/s, median ${median(rates).toFixed(2)} GB/s (1 GB = 1e9 bytes)`);
} finally {
  child.kill('SIGKILL');
  await exited;
  fs.rmSync(work, { recursive: true, force: true });
}
