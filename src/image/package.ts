import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/**
 * The directory holding ckpt's package.json, found by walking up from this module, so
 * schemas/ is found the same way from dist/src/image/ (compiled) and src/image/ (tsx).
 */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`ckpt: no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  root = dir;
  return dir;
}

let tool: string | undefined;

/** "ckpt <version>", as recorded in every manifest. */
export function toolName(): string {
  tool ??= `ckpt ${(JSON.parse(readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version}`;
  return tool;
}
