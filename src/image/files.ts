import { constants, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { ImageError } from './errors.js';

const { O_WRONLY, O_CREAT, O_TRUNC, O_RDONLY, O_NOFOLLOW, O_DIRECTORY } = constants;

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;

/**
 * Opens a file of the image for writing, 0600 whatever the umask. O_NOFOLLOW: a symlink
 * planted in the image directory must not redirect our writes elsewhere.
 */
export async function createFile(file: string): Promise<FileHandle> {
  const fh = await open(file, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, FILE_MODE);
  try {
    await fh.chmod(FILE_MODE);
  } catch (err) {
    await fh.close();
    throw err;
  }
  return fh;
}

/** Writes all of data at position (a single write may be short). */
export async function writeAll(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Whole small file, written and fsynced: the manifest must never point at data still in
 * flight. onCreated runs once the file exists (so a failed dump removes only what it made).
 */
export async function writeWholeFile(file: string, data: Uint8Array, onCreated: () => void): Promise<void> {
  const fh = await createFile(file);
  onCreated();
  try {
    await writeAll(fh, data, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Opens an image file for reading; only regular files, never through a symlink. */
export async function openForRead(file: string): Promise<{ fh: FileHandle; stat: Stats }> {
  let fh: FileHandle;
  try {
    fh = await open(file, O_RDONLY | O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ImageError(`${file}: missing (listed in manifest.json)`, { file, cause: err });
    if (code === 'ELOOP') throw new ImageError(`${file}: is a symlink; image files must be regular files`, { file, cause: err });
    throw new ImageError(`${file}: cannot open: ${(err as Error).message}`, { file, cause: err });
  }
  const stat = await fh.stat();
  if (!stat.isFile()) {
    await fh.close();
    throw new ImageError(`${file}: not a regular file`, { file });
  }
  return { fh, stat };
}

/** Reads exactly length bytes at position into buf at bufOffset; a short file is damage, not EOF. */
export async function readExactly(fh: FileHandle, buf: Uint8Array, bufOffset: number, length: number, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, bufOffset + done, length - done, position + done);
    if (bytesRead === 0) throw new ImageError(`${file}: ends at byte ${position + done}, expected data up to byte ${position + length}`, { file });
    done += bytesRead;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, O_RDONLY | O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * JSON.parse with the file and position in the message. V8 reports an input that stops
 * early without a position, so that case (a truncated file) gets the end position.
 */
export function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const at = / in JSON at position (\d+)/.exec(message);
    const position = at ? Number(at[1]) : message.startsWith('Unexpected end of JSON input') ? text.length : undefined;
    const reason = message.replace(/ in JSON at position \d+.*$/, '');
    const where =
      position === undefined ? '' : position >= text.trimEnd().length ? ` (truncated: input ends at position ${position})` : ` at position ${position}`;
    throw new ImageError(`${file}: invalid JSON${where}: ${reason}`, { file, cause: err });
  }
}
