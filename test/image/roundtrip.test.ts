import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ImageReader, ImageWriter, PAGE_SIZE, hex, type PageEntry } from '../../src/image/index.js';
import { imageError, pattern, scratch } from './util.js';

const MiB = 1 << 20;

t.test('records, blobs and 64 MiB of pages come back as written', async (t) => {
  const dir = scratch(t);
  const image = await ImageWriter.create(dir);
  await image.writeRecord('fds', 1234, { pid: 1234, fds: [] });
  await image.writeBlob('xsave-1234.img', pattern(4096, 7));
  const pages = image.pages(1234);

  // 64 MiB of data in the shapes a dump produces: big buffers, one readv batch of several
  // runs, and single pages written with write() into a reused buffer.
  const expected = new Map<bigint, Buffer>();
  let addr = 0x7f0000000000n;
  for (let i = 0; i < 6; i++) {
    const buf = pattern(8 * MiB, i);
    expected.set(addr, buf);
    await pages.add(addr, buf);
    addr += BigInt(buf.length + 16 * PAGE_SIZE);
  }
  const batch = pattern(16 * MiB - 4 * PAGE_SIZE, 100);
  const runs = [
    { addr: 0x10000000n, pages: 1 },
    { addr: 0x10002000n, pages: 4096 - 9 },
    { addr: 0x20000000n, pages: 4 },
  ];
  let at = 0;
  for (const r of runs) {
    expected.set(r.addr, batch.subarray(at, at + r.pages * PAGE_SIZE));
    at += r.pages * PAGE_SIZE;
  }
  await pages.addRuns(runs, batch);
  const reused = Buffer.allocUnsafe(PAGE_SIZE);
  for (let i = 0; i < 4; i++) {
    pattern(PAGE_SIZE, 200 + i).copy(reused);
    const a = 0x30000000n + BigInt(i * 2 * PAGE_SIZE);
    expected.set(a, pattern(PAGE_SIZE, 200 + i));
    await pages.write(a, reused);
  }
  pages.addZero(0x40000000n, 10);
  pages.addZero(0x4000a000n, 6); // joins the run before
  pages.addParent(0x50000000n, 3);
  pages.addLazy(0x60000000n, 2);
  const manifest = await image.commit({ root_pid: 1234, meta: { note: 'test' } });
  t.equal(pages.bytesWritten, 64 * MiB);

  t.equal(manifest.root_pid, 1234);
  t.same(Object.keys(manifest.files), ['fds-1234.json', 'pagemap-1234.json', 'pages-1234.img', 'xsave-1234.img']);
  t.same(manifest.files['pages-1234.img'], { size: 64 * MiB, checked_by: 'pagemap-1234.json' });

  const reader = await ImageReader.open(dir);
  t.teardown(() => reader.close());
  t.same(reader.manifest, manifest);
  t.equal(reader.manifest.format, 1);
  t.equal(reader.manifest.page_size, 4096);
  t.match(reader.manifest.tool, /^ckpt \d+\.\d+\.\d+/);
  t.same(reader.manifest.meta, { note: 'test' });
  t.same(await reader.record('fds', 1234), { $format: 1, pid: 1234, fds: [] });
  t.same(reader.list('fds'), [1234]);
  t.same(reader.pids(), [1234]);
  t.ok(reader.has('fds', 1234));
  t.notOk(reader.has('fds', 1));
  t.ok((await reader.blob('xsave-1234.img')).equals(pattern(4096, 7)));
  await reader.verify();

  const pr = await reader.pages(1234);
  const data = pr.entries.filter((e) => e.kind === 'data');
  t.equal(data.length, expected.size);
  const sorted = [...pr.entries].sort((a, b) => (a.addr < b.addr ? -1 : 1));
  t.same(pr.entries, sorted, 'entries are sorted by address');
  for (const e of data) {
    t.ok((await pr.read(e)).equals(expected.get(e.addr)!), `run at ${hex(e.addr)}`);
  }
  const into = Buffer.alloc(9 * MiB);
  const first = data.find((e) => e.addr === 0x7f0000000000n)!;
  const got = await pr.read(first, into);
  t.equal(got.buffer, into.buffer, 'reads into the buffer given');
  t.equal(got.length, 8 * MiB);

  const byKind = (kind: string): Omit<PageEntry, 'addr'>[] => pr.entries.filter((e) => e.kind === kind);
  t.same(byKind('zero'), [{ addr: 0x40000000n, pages: 16, kind: 'zero' }]);
  t.same(byKind('parent'), [{ addr: 0x50000000n, pages: 3, kind: 'parent' }]);
  t.same(byKind('lazy'), [{ addr: 0x60000000n, pages: 2, kind: 'lazy' }]);
  const zeros = await pr.read(byKind('zero')[0] as PageEntry, Buffer.alloc(16 * PAGE_SIZE, 0xff));
  t.ok(zeros.equals(Buffer.alloc(16 * PAGE_SIZE)), 'zero runs read as zeros');
  const parentRun = pr.entries.find((e) => e.kind === 'parent')!;
  t.equal(
    (await imageError(t, pr.read(parentRun))).message,
    `${dir}/pages-1234.img: run at 0x50000000 (3 pages) is of kind "parent": its contents are not in this image`,
  );

  // The pages file holds the data runs back to back in the order they were added.
  const whole = await pr.readRange(0, pr.size);
  t.ok(whole.subarray(0, 8 * MiB).equals(expected.get(0x7f0000000000n)!));
  t.ok(whole.subarray(48 * MiB, 48 * MiB + PAGE_SIZE).equals(expected.get(0x10000000n)!));
  t.equal(
    (await imageError(t, pr.readRange(pr.size - 10, 11))).message,
    `${dir}/pages-1234.img: range of 11 bytes at offset ${64 * MiB - 10} is outside the file (${64 * MiB} bytes)`,
  );
});

t.test('a singleton record is <kind>.json; a record is validated as it will be read', async (t) => {
  const dir = scratch(t);
  const image = await ImageWriter.create(dir);
  t.teardown(() => image.abort());
  t.equal(
    (await imageError(t, image.writeRecord('fds', 1, { pid: 'one', fds: [] }))).message,
    'fds-1.json: does not match schemas/image/fds.schema.json: /pid must be integer',
  );
  t.equal(
    (await imageError(t, image.writeRecord('fds', 2, { pid: 2n, fds: [] }))).message,
    'fds-2.json: cannot be written as JSON: Do not know how to serialize a BigInt (store 64-bit values with hex())',
  );
  t.equal((await imageError(t, image.writeRecord('nosuchkind', null, {}))).message, 'nosuchkind.json: no schema for record kind "nosuchkind" (schemas/image/nosuchkind.schema.json)');
  t.equal((await imageError(t, image.writeRecord('pagemap', 1, {}))).message, 'pagemap-1.json: pagemap records are written by pages(pid).close()');
  await image.writeRecord('fds', 3, { pid: 3, fds: [] });
  t.equal((await imageError(t, image.writeRecord('fds', 3, { pid: 3, fds: [] }))).message, 'fds-3.json: written twice');
  t.equal(
    (await imageError(t, image.commit({ root_pid: 3 }))).message,
    `${dir}: not committed: a write failed: fds-1.json: does not match schemas/image/fds.schema.json: /pid must be integer`,
  );
});

t.test('the image directory is 0700 and every file 0600, whatever was there before', async (t) => {
  const dir = scratch(t);
  const { mkdirSync, writeFileSync } = await import('node:fs');
  mkdirSync(dir, { mode: 0o755 });
  writeFileSync(path.join(dir, 'fds-1.json'), 'stale', { mode: 0o666 });
  const umask = process.umask(0o000);
  try {
    const image = await ImageWriter.create(dir);
    await image.writeRecord('fds', 1, { pid: 1, fds: [] });
    await image.writeBlob('blob.img', Buffer.from('x'));
    await image.pages(1).add(0x1000n, pattern(PAGE_SIZE, 1));
    await image.commit({ root_pid: 1 });
  } finally {
    process.umask(umask);
  }
  t.equal(statSync(dir).mode & 0o777, 0o700);
  const names = readdirSync(dir).sort();
  t.same(names, ['blob.img', 'fds-1.json', 'manifest.json', 'pagemap-1.json', 'pages-1.img']);
  for (const name of names) t.equal(statSync(path.join(dir, name)).mode & 0o777, 0o600, name);
});

t.test('page runs are checked as they are added and when closed', async (t) => {
  const dir = scratch(t);
  const image = await ImageWriter.create(dir);
  t.teardown(() => image.abort());
  const pages = image.pages(5);
  t.equal(image.pages(5), pages, 'one page store per pid');
  t.equal((await imageError(t, pages.add(0x1001n, pattern(PAGE_SIZE, 0)))).message, 'pages-5.img: address 4097 is not a page-aligned bigint');
  t.equal(
    (await imageError(t, pages.add(0x1000n, Buffer.alloc(100)))).message,
    'pages-5.img: page data must be a non-empty Buffer whose length is a multiple of 4096',
  );
  t.equal(
    (await imageError(t, pages.addRuns([{ addr: 0x1000n, pages: 2 }], pattern(PAGE_SIZE, 0)))).message,
    'pages-5.img: runs of 2 pages given 4096 bytes of data',
  );
  t.throws(() => pages.addZero(0xfffffffffffff000n, 2), { message: 'pages-5.img: run at 0xfffffffffffff000 (2 pages) ends beyond 2^64' });
  await pages.add(0x10000n, pattern(4 * PAGE_SIZE, 0));
  pages.addZero(0x12000n, 1);
  t.equal((await imageError(t, pages.close())).message, 'pages-5.img: pages of pid 5: run at 0x12000 (1 page) overlaps run at 0x10000 (4 pages)');
  t.equal((await imageError(t, pages.add(0x20000n, pattern(PAGE_SIZE, 0)))).message, 'pages-5.img: pages of pid 5 are already closed');
});

t.test('an incremental image names its parent', async (t) => {
  const root = path.dirname(scratch(t));
  const parent = await ImageWriter.create(path.join(root, 'pre'));
  await parent.commit({ root_pid: 9 });
  t.equal(
    (await imageError(t, ImageWriter.create(path.join(root, 'final'), { parent: '../nothing' }))).message,
    `parent image ../nothing (relative to ${root}/final) has no manifest.json`,
  );
  t.equal(
    (await imageError(t, ImageWriter.create(path.join(root, 'final'), { parent: `${root}/pre` }))).message,
    `parent image ${JSON.stringify(`${root}/pre`)} must be a path relative to the image directory`,
  );
  const child = await ImageWriter.create(path.join(root, 'final'), { parent: '../pre' });
  child.pages(9).addParent(0x400000n, 10);
  await child.commit({ root_pid: 9 });
  const reader = await ImageReader.open(path.join(root, 'final'));
  t.equal(reader.manifest.parent, '../pre');
  const pr = await reader.pages(9);
  t.same(pr.entries, [{ addr: 0x400000n, pages: 10, kind: 'parent' }]);
  await reader.close();
});
