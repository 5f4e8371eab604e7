// manifest.json is written last and atomically: an image is complete or refused, never half.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ImageReader, ImageWriter, PAGE_SIZE } from '../../src/image/index.js';
import { imageError, pattern, scratch } from './util.js';

const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'writer-child.js');

/** Runs writer-child.js and SIGKILLs it delayMs after it first prints `line`. */
function killAfter(mode: string, dir: string, line: string, delayMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, mode, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.setEncoding('utf8').on('data', (data: string) => {
      if (!out.includes(line) && (out += data).includes(line)) setTimeout(() => proc.kill('SIGKILL'), delayMs);
    });
    proc.on('error', reject);
    proc.on('exit', (code, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error(`writer-child ended with ${code ?? signal} before it was killed`))));
  });
}

t.test('the manifest appears at commit, after every other file', async (t) => {
  const dir = scratch(t);
  const image = await ImageWriter.create(dir);
  await image.writeRecord('fds', 1, { pid: 1, fds: [] });
  await image.pages(1).add(0x1000n, pattern(16 * PAGE_SIZE, 1));
  await image.pages(1).close();
  t.notOk(existsSync(path.join(dir, 'manifest.json')), 'no manifest before commit');
  t.equal((await imageError(t, ImageReader.open(dir))).message, `${dir}: incomplete image: no manifest.json`);
  await image.commit({ root_pid: 1 });
  const mtime = (name: string): bigint => statSync(path.join(dir, name), { bigint: true }).mtimeNs;
  for (const name of readdirSync(dir)) t.ok(mtime('manifest.json') >= mtime(name), `manifest.json not older than ${name}`);
  t.notOk(existsSync(path.join(dir, '.manifest.json.tmp')));
  t.equal((await imageError(t, image.writeRecord('fds', 2, { pid: 2, fds: [] }))).message, `${dir}: image writer is committed`);
  t.equal((await imageError(t, image.abort())).message, `${dir}: image is committed; remove it instead of aborting`);
});

t.test('abort removes what the writer made, and only that', async (t) => {
  const dir = scratch(t);
  const image = await ImageWriter.create(dir);
  await image.writeRecord('fds', 1, { pid: 1, fds: [] });
  await image.writeBlob('b.img', Buffer.from('b'));
  await image.pages(1).add(0x1000n, pattern(PAGE_SIZE, 1));
  await image.abort();
  t.notOk(existsSync(dir), 'the directory it created is gone');

  mkdirSync(dir);
  writeFileSync(path.join(dir, 'notes.txt'), 'keep');
  const again = await ImageWriter.create(dir);
  await again.pages(2).add(0x1000n, pattern(PAGE_SIZE, 1));
  await again.abort();
  t.same(readdirSync(dir), ['notes.txt']);
});

t.test('a failed commit leaves no manifest', async (t) => {
  const dir = scratch(t);
  const image = await ImageWriter.create(dir);
  await image.writeRecord('fds', 1, { pid: 1, fds: [] });
  t.equal(
    (await imageError(t, image.commit({ root_pid: 0 }))).message,
    `${dir}/manifest.json: does not match schemas/image/manifest.schema.json: /root_pid must be >= 1`,
  );
  t.notOk(existsSync(path.join(dir, 'manifest.json')));
  await image.abort();
  t.notOk(existsSync(dir));
});

t.test('a failed page write fails close() and commit()', async (t) => {
  const dir = scratch(t);
  mkdirSync(path.join(dir, 'pages-7.img'), { recursive: true });
  const image = await ImageWriter.create(dir);
  const pages = image.pages(7);
  await pages.add(0x1000n, pattern(PAGE_SIZE, 1));
  const message = `pages-7.img: write of 4096 bytes at offset 0 failed: EISDIR: illegal operation on a directory, open '${dir}/pages-7.img'`;
  t.equal((await imageError(t, pages.close())).message, message);
  t.equal((await imageError(t, image.commit({ root_pid: 7 }))).message, message);
  await image.abort();
  t.same(readdirSync(dir), ['pages-7.img'], 'the directory it did not make stays');
});

t.test('an existing image is replaced only when asked', async (t) => {
  const dir = scratch(t);
  const first = await ImageWriter.create(dir);
  await first.writeRecord('fds', 1, { pid: 1, fds: [] });
  await first.writeBlob('old.img', Buffer.from('old'));
  await first.commit({ root_pid: 1 });
  t.equal((await imageError(t, ImageWriter.create(dir))).message, `${dir}: already holds an image (manifest.json); pass overwrite to replace it`);
  const second = await ImageWriter.create(dir, { overwrite: true });
  t.same(readdirSync(dir), [], 'the old image is gone as soon as the new one starts');
  await second.writeRecord('fds', 2, { pid: 2, fds: [] });
  await second.commit({ root_pid: 2 });
  const reader = await ImageReader.open(dir);
  t.same(Object.keys(reader.manifest.files), ['fds-2.json']);
});

t.test('a writer killed midway leaves an image that is refused', async (t) => {
  const dir = scratch(t);
  await killAfter('write', dir, 'writing', 0);
  t.ok(statSync(path.join(dir, 'pages-1.img')).size >= 8 << 20, 'it had written pages');
  t.ok(existsSync(path.join(dir, 'fds-1.json')), 'and records');
  const err = await imageError(t, ImageReader.open(dir));
  t.equal(err.message, `${dir}: incomplete image: no manifest.json`);
});

t.test('killed at any moment while replacing an image, a reader sees all of one or nothing', async (t) => {
  for (const delay of [0, 3, 7, 15, 30]) {
    const dir = scratch(t);
    await killAfter('cycle', dir, 'committed', delay);
    try {
      const reader = await ImageReader.open(dir);
      await reader.verify();
      t.same(Object.keys(reader.manifest.files), ['blob.img', 'fds-1.json', 'pagemap-1.json', 'pages-1.img'], `complete image (delay ${delay} ms)`);
    } catch (err) {
      t.equal((err as Error).message, `${dir}: incomplete image: no manifest.json`, `refused (delay ${delay} ms)`);
    }
  }
});
