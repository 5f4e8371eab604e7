// Page store write throughput: 2 GiB of page data through PageWriter into a fresh image in
// /dev/shm (memory-backed, so this measures ckpt, not a disk). Buffers are filled beforehand,
// as process_vm_readv would have filled them. Usage:
//   node dist/bench/image-write.js [total MiB (2048)] [buffer KiB (8192)] [concurrency (4)]
import { mkdtemp, rm } from 'node:fs/promises';
import { ImageWriter, PAGE_SIZE, loadSchemas } from '../src/image/index.js';

const totalBytes = Number(process.argv[2] ?? 2048) * 2 ** 20;
const bufBytes = Number(process.argv[3] ?? 8192) * 1024;
const concurrency = Number(process.argv[4] ?? 4);
if (bufBytes % PAGE_SIZE !== 0 || totalBytes % bufBytes !== 0) throw new Error('sizes must be whole pages and divide evenly');
const count = totalBytes / bufBytes;

// Distinct contents per buffer so nothing can be deduplicated; filled before timing starts.
const big = Buffer.allocUnsafeSlow(totalBytes);
for (let i = 0; i < count; i++) big.fill(i % 251, i * bufBytes, (i + 1) * bufBytes);

// Compiling the schemas is a one-time cost per process (~0.1 s), reported apart.
const compile = process.hrtime.bigint();
loadSchemas();
const compileMs = Number(process.hrtime.bigint() - compile) / 1e6;

const dir = await mkdtemp('/dev/shm/ckpt-bench-');
try {
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const image = await ImageWriter.create(`${dir}/image`, { concurrency });
  const pages = image.pages(1);
  for (let i = 0; i < count; i++) {
    await pages.add(0x7f0000000000n + BigInt(i * bufBytes), big.subarray(i * bufBytes, (i + 1) * bufBytes));
  }
  await image.commit({ root_pid: 1 });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  // CPU time (all threads, user + system) depends far less than wall time on other load.
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  const gb = totalBytes / 1e9;
  console.log(
    `image-write: ${(totalBytes / 2 ** 30).toFixed(2)} GiB in ${bufBytes / 1024} KiB buffers, concurrency ${concurrency}: ` +
      `${seconds.toFixed(3)} s, ${(gb / seconds).toFixed(2)} GB/s; CPU ${cpuSeconds.toFixed(2)} s = ${(cpuSeconds / gb).toFixed(2)} s per GB ` +
      `(schemas compiled before, in ${compileMs.toFixed(0)} ms)`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
