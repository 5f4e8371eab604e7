// Paths of the package, found from this file's location so tests work from any cwd
// (this file runs as dist/test/helpers/paths.js).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'ckpt') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json of ckpt above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** The package root (where package.json is). */
export const packageRoot = findPackageRoot();

/** test/fixtures: the fixture sources. */
export const fixturesDir = path.join(packageRoot, 'test', 'fixtures');

/** test/fixtures/bin: the built fixtures (gitignored). */
export const fixturesBinDir = path.join(fixturesDir, 'bin');

/** Absolute path of the built fixture `name` (test/fixtures/bin/<name>). */
export function fixture(name: string): string {
  return path.join(fixturesBinDir, name);
}
