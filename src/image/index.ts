/** The image directory: manifest, schema-checked JSON records, page store. See docs/image-format.md. */
export { ImageError } from './errors.js';
export { hex, parseHex } from './hex.js';
export { ImageWriter, type ImageWriterOptions, type CommitOptions } from './writer.js';
export { ImageReader } from './reader.js';
export { PageWriter, PageReader } from './pages.js';
export { validateRecord, loadSchemas, schemasDir, RECORD_FORMAT } from './schemas.js';
export { recordFileName, parseRecordFileName, pagemapFileName, pagesFileName } from './names.js';
export {
  IMAGE_FORMAT,
  PAGE_SIZE,
  machineArch,
  type Manifest,
  type ManifestFile,
  type PageKind,
  type Pagemap,
  type PagemapEntry,
  type PageEntry,
} from './types.js';
