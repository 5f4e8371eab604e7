// Child process of atomic.test.ts, killed with SIGKILL at some point while it writes.
//   write <dir>: writes pages and never commits (prints "writing" once well under way)
//   cycle <dir>: replaces the image in <dir> again and again (prints "committed" after each)
import { ImageWriter } from '../../src/image/index.js';

const [mode, dir] = process.argv.slice(2);
const chunk = Buffer.alloc(1 << 20, 0xab);

async function writeImage(pages: number, overwrite: boolean): Promise<ImageWriter> {
  const image = await ImageWriter.create(dir!, { overwrite });
  await image.writeRecord('fds', 1, { pid: 1, fds: [] });
  await image.writeBlob('blob.img', chunk.subarray(0, 1000));
  const store = image.pages(1);
  for (let i = 0; i < pages; i++) {
    await store.write(0x10000000n + BigInt(i * chunk.length), chunk);
    if (mode === 'write' && i === 8) process.stdout.write('writing\n');
  }
  return image;
}

if (mode === 'write') {
  // Bounded so a child left behind stops by itself.
  await writeImage(1024, false);
  process.exit(3);
} else {
  for (let round = 0; round < 1000; round++) {
    const image = await writeImage(4, true);
    await image.commit({ root_pid: 1 });
    process.stdout.write('committed\n');
  }
}
