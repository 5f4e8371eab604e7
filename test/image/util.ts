// Shared by the image tests: scratch directories, page patterns, and edits that damage an image.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import { ImageError } from '../../src/image/index.js';

/** A fresh directory removed when the test ends; the image goes into <it>/image. */
export function scratch(t: Test): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ckpt-image-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'image');
}

/** Pages whose every 32-bit word says where it is, so a misplaced page cannot go unnoticed. */
export function pattern(bytes: number, seed: number): Buffer {
  const buf = Buffer.allocUnsafe(bytes);
  const words = new Uint32Array(buf.buffer, buf.byteOffset, bytes / 4);
  for (let i = 0; i < words.length; i++) words[i] = (i * 2654435761 + seed) >>> 0;
  return buf;
}

/** The ImageError a promise rejects with; fails the test if it resolves or rejects otherwise. */
export async function imageError(t: Test, promise: Promise<unknown>): Promise<ImageError> {
  try {
    await promise;
  } catch (err) {
    t.type(err, ImageError);
    return err as ImageError;
  }
  t.fail('expected an ImageError');
  return new ImageError('(none)');
}

export function readManifest(dir: string): { files: Record<string, { size: number; sha256?: string }>; [key: string]: unknown } {
  return JSON.parse(readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
}

export function writeManifest(dir: string, manifest: object): void {
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2));
}

/** Replaces a file and lists its new size and sha256, as a buggy writer would have: only the content is wrong. */
export function replaceListed(dir: string, name: string, content: string | Buffer): void {
  const data = Buffer.from(content);
  writeFileSync(path.join(dir, name), data);
  const manifest = readManifest(dir);
  manifest.files[name] = { size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
  writeManifest(dir, manifest);
}
