import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** What the helpers need of a tap test: somewhere to register cleanup. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Creates an empty temporary directory, removed with its contents at `t`'s teardown. */
export function tmpdir(t: Teardown, prefix = 'ckpt-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
