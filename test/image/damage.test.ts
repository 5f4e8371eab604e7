// Damaged and incomplete images are refused with a message that names the file and the problem.
import { appendFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ImageReader, ImageWriter, PAGE_SIZE, validateRecord } from '../../src/image/index.js';
import { imageError, pattern, readManifest, replaceListed, scratch, writeManifest } from './util.js';

const MiB = 1 << 20;

/** pid 1: fds-1.json, a blob, and three data runs (1 MiB, 2 pages, 1 MiB) in pages-1.img. */
async function sample(dir: string): Promise<void> {
  const image = await ImageWriter.create(dir);
  await image.writeRecord('fds', 1, { pid: 1, fds: [] });
  await image.writeBlob('xsave-1.img', pattern(832, 3));
  const pages = image.pages(1);
  await pages.add(0x400000n, pattern(MiB, 1));
  await pages.add(0x7f0000000000n, pattern(2 * PAGE_SIZE, 2));
  await pages.add(0x7ffff0000000n, pattern(MiB, 3));
  await image.commit({ root_pid: 1 });
}

async function flipByte(file: string, offset: number): Promise<void> {
  const fh = await open(file, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, offset);
  b[0]! ^= 0x10;
  await fh.write(b, 0, 1, offset);
  await fh.close();
}

const openError = async (t: Test, dir: string): Promise<string> => (await imageError(t, ImageReader.open(dir))).message;

t.test('a missing directory', async (t) => {
  const dir = scratch(t);
  t.equal(await openError(t, dir), `${dir}: image directory does not exist`);
});

t.test('no manifest: incomplete', async (t) => {
  const dir = scratch(t);
  mkdirSync(dir);
  const err = await imageError(t, ImageReader.open(dir));
  t.equal(err.message, `${dir}: incomplete image: no manifest.json`);
  t.equal(err.file, path.join(dir, 'manifest.json'));
});

t.test('a truncated manifest', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  const file = path.join(dir, 'manifest.json');
  const text = readFileSync(file, 'utf8');
  const cut = text.indexOf('"root_pid"') + '"root_pid": '.length;
  truncateSync(file, cut);
  t.equal(await openError(t, dir), `${file}: invalid JSON (truncated: input ends at position ${cut}): Unexpected end of JSON input`);
  truncateSync(file, 0);
  t.equal(await openError(t, dir), `${file}: invalid JSON (truncated: input ends at position 0): Unexpected end of JSON input`);
  writeFileSync(file, text.replace('"format": 1,', '"format": 1,,'));
  t.equal(await openError(t, dir), `${file}: invalid JSON at position 16: Expected double-quoted property name`);
});

t.test('a manifest of another format version', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  const file = path.join(dir, 'manifest.json');
  writeManifest(dir, { ...readManifest(dir), format: 2, something_new: {} });
  t.equal(await openError(t, dir), `${file}: image format 2 is newer than this ckpt reads (this ckpt reads format 1)`);
  writeManifest(dir, { ...readManifest(dir), format: '1' });
  t.equal(await openError(t, dir), `${file}: image format "1" is not supported (this ckpt reads format 1)`);
});

t.test('a manifest that breaks its schema', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  const { tool: _tool, ...rest } = readManifest(dir);
  writeManifest(dir, { ...rest, root_pid: 0 });
  t.equal(
    await openError(t, dir),
    `${dir}/manifest.json: does not match schemas/image/manifest.schema.json: / must have required property 'tool'; /root_pid must be >= 1`,
  );
});

t.test('a record of a newer format', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  replaceListed(dir, 'fds-1.json', JSON.stringify({ $format: 2, pid: 1, fds: [], new_field: true }));
  t.equal(await openError(t, dir), `${dir}/fds-1.json: record format 2 is newer than this ckpt reads (1); use a newer ckpt`);
  t.throws(() => validateRecord('fds', { pid: 1, fds: [] }), { message: 'fds record: no "$format" field' });
});

t.test('a missing record file', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  unlinkSync(path.join(dir, 'fds-1.json'));
  t.equal(await openError(t, dir), `${dir}/fds-1.json: missing (listed in manifest.json)`);
});

t.test('a record that fails its schema', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  const pagemap = JSON.parse(readFileSync(path.join(dir, 'pagemap-1.json'), 'utf8'));
  pagemap.entries[1].kind = 'dirty';
  delete pagemap.entries[2].crc32;
  replaceListed(dir, 'pagemap-1.json', JSON.stringify(pagemap));
  t.equal(
    await openError(t, dir),
    `${dir}/pagemap-1.json: does not match schemas/image/pagemap.schema.json: ` +
      `/entries/1/offset is not allowed here; /entries/1/crc32 is not allowed here; ` +
      `/entries/1/kind must be equal to one of the allowed values ("data", "zero", "parent", "lazy"); /entries/2 must have required property 'crc32'`,
  );
});

t.test('a pagemap that does not describe its pages file', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  const pagemap = JSON.parse(readFileSync(path.join(dir, 'pagemap-1.json'), 'utf8'));
  pagemap.entries[1].offset += PAGE_SIZE;
  replaceListed(dir, 'pagemap-1.json', JSON.stringify(pagemap));
  t.equal(await openError(t, dir), `${dir}/pagemap-1.json: data run at 0x7f0000000000 (2 pages) is at offset ${MiB + PAGE_SIZE} of pages-1.img, expected ${MiB}`);
  pagemap.entries[1].offset -= PAGE_SIZE;
  pagemap.entries[1].addr = '0x400000';
  replaceListed(dir, 'pagemap-1.json', JSON.stringify(pagemap));
  t.equal(await openError(t, dir), `${dir}/pagemap-1.json: entry 1: run at 0x400000 (2 pages) is out of order or overlaps run at 0x400000 (256 pages)`);
});

t.test('a record changed after the dump', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  writeFileSync(path.join(dir, 'fds-1.json'), readFileSync(path.join(dir, 'fds-1.json'), 'utf8').replace('"pid": 1', '"pid": 7'));
  t.equal(await openError(t, dir), `${dir}/fds-1.json: sha256 mismatch: damaged or changed since the dump`);
});

t.test('a pages file of the wrong size', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  appendFileSync(path.join(dir, 'pages-1.img'), 'x');
  t.equal(await openError(t, dir), `${dir}/pages-1.img: ${2 * MiB + 2 * PAGE_SIZE + 1} bytes, manifest.json says ${2 * MiB + 2 * PAGE_SIZE}`);
});

t.test('a flipped byte anywhere in a pages file is found by verify() and by read()', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  const file = path.join(dir, 'pages-1.img');
  const runs = [
    { at: 0, name: 'run at 0x400000 (256 pages) at offset 0' },
    { at: MiB + PAGE_SIZE + 5, name: `run at 0x7f0000000000 (2 pages) at offset ${MiB}` },
    { at: 2 * MiB + 2 * PAGE_SIZE - 1, name: `run at 0x7ffff0000000 (256 pages) at offset ${MiB + 2 * PAGE_SIZE}` },
  ];
  for (const { at, name } of runs) {
    await flipByte(file, at);
    const reader = await ImageReader.open(dir);
    const message = `${file}: checksum mismatch in data ${name}: the pages file is damaged`;
    t.equal((await imageError(t, reader.verify())).message, message, `verify, byte ${at}`);
    const pages = await reader.pages(1);
    const entry = pages.entries.find((e) => e.offset! <= at && at < e.offset! + e.pages * PAGE_SIZE)!;
    t.equal((await imageError(t, pages.read(entry))).message, message, `read, byte ${at}`);
    await reader.close();
    await flipByte(file, at);
  }
  const reader = await ImageReader.open(dir);
  await reader.verify();
  t.pass('verify passes once every byte is back');
});

t.test('verify names every damaged file', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  await flipByte(path.join(dir, 'xsave-1.img'), 100);
  await flipByte(path.join(dir, 'pages-1.img'), MiB);
  const reader = await ImageReader.open(dir);
  t.equal(
    (await imageError(t, reader.verify())).message,
    `${dir}: 2 damaged files: ${dir}/pages-1.img: checksum mismatch in data run at 0x7f0000000000 (2 pages) at offset ${MiB}: the pages file is damaged; ` +
      `${dir}/xsave-1.img: sha256 mismatch: damaged or changed since the dump`,
  );
  t.equal((await imageError(t, reader.blob('xsave-1.img'))).message, `${dir}/xsave-1.img: sha256 mismatch: damaged or changed since the dump`);
});

t.test('names that would leave the image are refused', async (t) => {
  const dir = scratch(t);
  const image = await ImageWriter.create(dir);
  t.teardown(() => image.abort());
  for (const name of ['../x', '/etc/passwd', 'a/b', '..', '.', '', 'a\0b', '.manifest.json.tmp', 'x'.repeat(256)]) {
    t.equal(
      (await imageError(t, image.writeBlob(name, Buffer.from('x')))).message,
      `unsafe file name ${JSON.stringify(name)}: names inside an image are flat ` +
        `(letters, digits, '.', '_', '-'; not starting with '.'; at most 255 characters)`,
      JSON.stringify(name),
    );
  }
  t.equal((await imageError(t, image.writeBlob('core-1.json', Buffer.from('x')))).message, 'core-1.json: reserved name (records are *.json, page data pages-<pid>.img)');
  t.equal((await imageError(t, image.writeRecord('../fds', 1, {}))).message, `invalid record kind "../fds": use lowercase words joined by '-' or '_'`);
  t.equal((await imageError(t, image.writeRecord('fds', -1, {}))).message, 'invalid record id -1: must be a non-negative integer');
});

t.test('a manifest listing a file outside the image is refused', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  const manifest = readManifest(dir);
  manifest.files['../secret'] = { size: 1, sha256: '0'.repeat(64) };
  writeManifest(dir, manifest);
  t.equal(
    await openError(t, dir),
    `${dir}/manifest.json: does not match schemas/image/manifest.schema.json: /files property name "../secret" must match pattern "^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$"`,
  );
});

t.test('an image file replaced by a symlink is refused', async (t) => {
  const dir = scratch(t);
  await sample(dir);
  const outside = path.join(path.dirname(dir), 'outside.img');
  writeFileSync(outside, readFileSync(path.join(dir, 'xsave-1.img')));
  rmSync(path.join(dir, 'xsave-1.img'));
  symlinkSync(outside, path.join(dir, 'xsave-1.img'));
  t.equal(await openError(t, dir), `${dir}/xsave-1.img: not a regular file`);
});
