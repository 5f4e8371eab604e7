// Damaged images are refused, by show and by restore, with a message naming the file and what
// is wrong with it; the intact image they were copied from is read without complaint.
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { makeSubreaper, startFixture, tmpdir } from '../helpers/index.js';
import { readStat } from '../../src/sys/proc.js';
import { ckpt, PAGE } from './helpers.js';

makeSubreaper();

t.test('truncated manifest, flipped byte in a pages file, missing record', async (t) => {
  const fx = await startFixture('counter', ['--alloc', '8'], { t });
  await fx.waitTicks(2);
  const base = tmpdir(t, 'ckpt-damaged-test-');
  const intact = path.join(base, 'intact');
  const dump = await ckpt(['dump', '-t', String(fx.pid), '-D', intact]);
  t.equal(dump.code, 0, `dump exits 0 ${dump.stderr}`);
  t.same(await fx.exited, { code: null, signal: 9 }, 'without --leave-running the dumped process is ended');
  const pid = fx.pid;

  const copy = (name: string) => {
    const dir = path.join(base, name);
    fs.cpSync(intact, dir, { recursive: true });
    return dir;
  };

  // manifest.json cut inside the value of "tool".
  const truncated = copy('truncated');
  const manifest = path.join(truncated, 'manifest.json');
  const text = fs.readFileSync(manifest, 'utf8');
  const cut = text.indexOf('"tool": "') + '"tool": "ckpt'.length;
  t.ok(cut > '"tool": "ckpt'.length, 'the manifest names the tool');
  fs.truncateSync(manifest, cut);

  // One byte in the middle of the pages file changed; the message names the run holding it.
  const flipped = copy('flipped');
  const pagesFile = path.join(flipped, `pages-${pid}.img`);
  const at = Math.floor(fs.statSync(pagesFile).size / 2);
  const fd = fs.openSync(pagesFile, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0] = b[0]! ^ 0x01;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);
  const pagemap = JSON.parse(fs.readFileSync(path.join(flipped, `pagemap-${pid}.json`), 'utf8')) as {
    entries: Array<{ addr: string; pages: number; kind: string; offset?: number }>;
  };
  const run = pagemap.entries.find((e) => e.kind === 'data' && e.offset! <= at && at < e.offset! + e.pages * PAGE)!;
  t.ok(run, 'a data run holds the flipped byte');

  // core-PID.json gone.
  const missing = copy('missing');
  fs.rmSync(path.join(missing, `core-${pid}.json`));

  const problems: Array<[string, string]> = [
    [truncated, `${manifest}: invalid JSON (truncated: input ends at position ${cut}): Unterminated string`],
    [flipped, `${pagesFile}: checksum mismatch in data run at ${run.addr} (${run.pages} page${run.pages === 1 ? '' : 's'}) at offset ${run.offset}: the pages file is damaged`],
    [missing, `${missing}/core-${pid}.json: missing (listed in manifest.json)`],
  ];
  for (const [dir, message] of problems) {
    const show = await ckpt(['show', dir]);
    t.same({ code: show.code, stdout: show.stdout }, { code: 1, stdout: '' }, `show ${path.basename(dir)}: exit 1, nothing shown`);
    t.equal(show.stderr.split('\n').filter((l) => l.startsWith('ckpt: ')).join('\n'), `ckpt: step 1 'show: ${dir}' failed: ${message}`, `show ${path.basename(dir)}: says which file and what`);
    const json = await ckpt(['show', dir, '--json']);
    t.same({ code: json.code, stdout: json.stdout }, { code: 1, stdout: '' }, `show --json ${path.basename(dir)}: exit 1, no JSON`);

    const restore = await ckpt(['restore', '-D', dir]);
    t.equal(restore.code, 1, `restore ${path.basename(dir)}: exit 1`);
    t.match(restore.stderr, `ckpt: step 1 'restore: ${dir}' failed: ${message}\n`, `restore ${path.basename(dir)}: the same message`);
    t.throws(() => readStat(pid), { code: 'ENOENT' }, `restore ${path.basename(dir)}: no process made`);
  }

  const good = await ckpt(['show', intact, '--json']);
  t.equal(good.code, 0, `the intact image is shown ${good.stderr}`);
  t.equal((JSON.parse(good.stdout) as { manifest: { root_pid: number } }).manifest.root_pid, pid);
  const goodCopy = await ckpt(['show', copy('copy')]);
  t.equal(goodCopy.code, 0, 'so is an unchanged copy of it');
  t.match(goodCopy.stdout, `process ${pid} (counter)`);
});
