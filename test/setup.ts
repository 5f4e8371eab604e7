// Test setup, run by `npm test` before tap: builds each test/fixtures/<name>.c into
// test/fixtures/bin/<name> when the binary is missing or older than its source or fixture.h.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fixturesBinDir, fixturesDir } from './helpers/paths.js';

const run = promisify(execFile);
const CFLAGS = ['-O1', '-g', '-Wall', '-Werror', '-pthread'];

function mtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return -1;
  }
}

async function main(): Promise<void> {
  const entries = fs.readdirSync(fixturesDir);
  const headersTime = Math.max(-1, ...entries.filter((f) => f.endsWith('.h')).map((f) => mtime(path.join(fixturesDir, f))));
  const sources = entries.filter((f) => f.endsWith('.c')).sort();
  fs.mkdirSync(fixturesBinDir, { recursive: true });

  const stale = sources.filter((src) => {
    const bin = mtime(path.join(fixturesBinDir, path.basename(src, '.c')));
    return bin < 0 || bin < mtime(path.join(fixturesDir, src)) || bin < headersTime;
  });
  const results = await Promise.allSettled(
    stale.map(async (src) => {
      const name = path.basename(src, '.c');
      // Built under a temporary name so an interrupted build never leaves a fresh-looking binary.
      const tmp = path.join(fixturesBinDir, `.${name}.tmp`);
      try {
        await run('gcc', [...CFLAGS, '-o', tmp, src], { cwd: fixturesDir });
      } catch (err) {
        fs.rmSync(tmp, { force: true });
        const e = err as Error & { stderr?: string };
        throw new Error(`gcc ${src} failed:\n${e.stderr || e.message}`);
      }
      fs.renameSync(tmp, path.join(fixturesBinDir, name));
    }),
  );
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length > 0) {
    for (const f of failed) process.stderr.write(`${(f.reason as Error).message}\n`);
    process.exit(1);
  }
  const built = stale.map((s) => path.basename(s, '.c'));
  console.log(
    `fixtures: ${built.length > 0 ? `built ${built.join(', ')}` : 'nothing to build'}; ${sources.length - built.length} up to date`,
  );
}

await main();
