import { arch } from 'node:os';

/** Version of the image layout; manifest.json's "format". */
export const IMAGE_FORMAT = 1;
export const PAGE_SIZE = 4096;

/** Architecture names as the kernel spells them (uname -m), not as Node does. */
export function machineArch(): string {
  const names: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', riscv64: 'riscv64' };
  return names[arch()] ?? arch();
}

/** A file of the image: small files carry their sha256; pages files are checked run by run through their pagemap. */
export interface ManifestFile {
  size: number;
  sha256?: string;
  checked_by?: string;
}

export interface Manifest {
  format: number;
  arch: string;
  kernel: string;
  tool: string;
  page_size: number;
  created: string;
  root_pid: number;
  parent?: string;
  files: Record<string, ManifestFile>;
  meta: Record<string, unknown>;
}

export type PageKind = 'data' | 'zero' | 'parent' | 'lazy';

/** A run of pages as stored in pagemap-<pid>.json; offset and crc32 are set for data runs only. */
export interface PagemapEntry {
  addr: string;
  pages: number;
  kind: PageKind;
  offset?: number;
  crc32?: number;
}

export interface Pagemap {
  $format: number;
  pid: number;
  entries: PagemapEntry[];
}

/** A run of pages as PageReader hands it out: the address parsed; offset and crc32 set for data runs. */
export interface PageEntry {
  addr: bigint;
  pages: number;
  kind: PageKind;
  offset?: number;
  crc32?: number;
}
