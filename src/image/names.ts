import { ImageError } from './errors.js';

/**
 * File names inside an image are flat and drawn from a small alphabet, so no name read
 * from a manifest can reach outside the directory ('/', '..', NUL, absolute paths) and
 * none collides with the hidden temporary manifest.
 */
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$/;

/** Record kinds: lowercase words joined by '-' or '_'; every '-' part starts with a letter so "<kind>-<id>" parses one way only. */
const KIND = /^[a-z][a-z0-9_]*(?:-[a-z][a-z0-9_]*)*$/;

export const MANIFEST = 'manifest.json';
export const MANIFEST_TMP = '.manifest.json.tmp';

export function checkFileName(name: string): void {
  if (typeof name !== 'string' || !SAFE_NAME.test(name)) {
    throw new ImageError(
      `unsafe file name ${JSON.stringify(name)}: names inside an image are flat ` +
        `(letters, digits, '.', '_', '-'; not starting with '.'; at most 255 characters)`,
      { file: String(name) },
    );
  }
}

export function checkKind(kind: string): void {
  if (typeof kind !== 'string' || !KIND.test(kind)) {
    throw new ImageError(`invalid record kind ${JSON.stringify(kind)}: use lowercase words joined by '-' or '_'`);
  }
}

export function checkId(id: number): void {
  if (!Number.isSafeInteger(id) || id < 0) throw new ImageError(`invalid record id ${id}: must be a non-negative integer`);
}

/** "<kind>-<id>.json", or "<kind>.json" for a record of which an image holds one. */
export function recordFileName(kind: string, id: number | null): string {
  checkKind(kind);
  if (id === null) return `${kind}.json`;
  checkId(id);
  return `${kind}-${id}.json`;
}

/** The kind and id a record file name stands for, or null when the name is not a record's. */
export function parseRecordFileName(name: string): { kind: string; id: number | null } | null {
  if (name === MANIFEST || !name.endsWith('.json')) return null;
  const stem = name.slice(0, -'.json'.length);
  const withId = /^(.+)-(\d+)$/.exec(stem);
  if (withId && KIND.test(withId[1]!)) {
    const id = Number(withId[2]);
    return Number.isSafeInteger(id) && String(id) === withId[2] ? { kind: withId[1]!, id } : null;
  }
  return KIND.test(stem) ? { kind: stem, id: null } : null;
}

export function pagemapFileName(pid: number): string {
  return recordFileName('pagemap', pid);
}

export function pagesFileName(pid: number): string {
  checkId(pid);
  return `pages-${pid}.img`;
}
