/** Every problem with an image (missing, incomplete, damaged, invalid) is an ImageError naming the file. */
export class ImageError extends Error {
  /** Path of the file (or image directory) the problem is about, when there is one. */
  file?: string;

  constructor(message: string, options: { file?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ImageError';
    if (options.file !== undefined) this.file = options.file;
  }
}
