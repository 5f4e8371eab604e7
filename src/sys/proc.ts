// Parsers of /proc/PID/* files. Pure TypeScript: these files are small and text, except pagemap
// and auxv, which are read as binary. Every failure is a ProcError naming the file.
// 64-bit addresses and values are bigint; counts, ids and small numbers are number.
import fs from 'node:fs';

export class ProcError extends Error {
  /** The /proc path that could not be read or parsed. */
  readonly path: string;
  /** errno name (ENOENT, ESRCH, EACCES...) when reading failed; undefined for a parse error. */
  readonly code: string | undefined;

  constructor(path: string, message: string, cause?: unknown) {
    super(`${path}: ${message}`, cause === undefined ? undefined : { cause });
    this.name = 'ProcError';
    this.path = path;
    this.code = (cause as NodeJS.ErrnoException | undefined)?.code;
  }
}

function procPath(pid: number, tid: number | undefined, name: string): string {
  return tid === undefined ? `/proc/${pid}/${name}` : `/proc/${pid}/task/${tid}/${name}`;
}

function fsCall<T>(path: string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw new ProcError(path, (err as Error).message, err);
  }
}

function readText(path: string): string {
  return fsCall(path, () => fs.readFileSync(path, 'utf8'));
}

function readLink(path: string): string {
  return fsCall(path, () => fs.readlinkSync(path));
}

function readDirNumbers(path: string): number[] {
  return fsCall(path, () => fs.readdirSync(path))
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .sort((a, b) => a - b);
}

function parseDec(path: string, what: string, s: string | undefined): number {
  if (s === undefined || !/^-?\d+$/.test(s)) throw new ProcError(path, `${what}: not a decimal number: ${s}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new ProcError(path, `${what}: ${s} does not fit a number`);
  return n;
}

function parseDecBig(path: string, what: string, s: string | undefined): bigint {
  if (s === undefined || !/^\d+$/.test(s)) throw new ProcError(path, `${what}: not a decimal number: ${s}`);
  return BigInt(s);
}

function parseHexBig(path: string, what: string, s: string | undefined): bigint {
  if (s === undefined || !/^[0-9a-fA-F]+$/.test(s)) throw new ProcError(path, `${what}: not a hex number: ${s}`);
  return BigInt('0x' + s);
}

// ---------------------------------------------------------------------------------------------
// stat

export interface ProcStat {
  pid: number;
  comm: string;
  /** One letter: R S D Z T t X I ... */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  tty_nr: number;
  tpgid: number;
  flags: number;
  minflt: number;
  majflt: number;
  /** Clock ticks. */
  utime: number;
  stime: number;
  priority: number;
  nice: number;
  num_threads: number;
  /** Clock ticks after boot. */
  starttime: bigint;
  vsize: bigint;
  /** Pages. */
  rss: number;
  start_code: bigint;
  end_code: bigint;
  start_stack: bigint;
  exit_signal: number;
  processor: number;
  rt_priority: number;
  policy: number;
  start_data: bigint;
  end_data: bigint;
  start_brk: bigint;
  arg_start: bigint;
  arg_end: bigint;
  env_start: bigint;
  env_end: bigint;
  exit_code: number;
}

/**
 * /proc/PID/stat, or /proc/PID/task/TID/stat. The current brk is not in it (start_brk is where
 * the heap began); it takes brk(0) inside the process.
 */
export function readStat(pid: number, tid?: number): ProcStat {
  const path = procPath(pid, tid, 'stat');
  const text = readText(path);
  // comm may hold spaces and parentheses: it spans from the first '(' to the last ')'.
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) throw new ProcError(path, 'no "(comm)" in stat');
  // f[i] is field i + 3 of proc(5): f[0] = state (3), f[1] = ppid (4), ...
  const f = text.slice(close + 2).trim().split(' ');
  if (f.length < 50) throw new ProcError(path, `expected 52 fields, found ${f.length + 2}`);
  const num = (field: number, name: string) => parseDec(path, name, f[field - 3]);
  const big = (field: number, name: string) => parseDecBig(path, name, f[field - 3]);
  return {
    pid: parseDec(path, 'pid', text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: f[0]!,
    ppid: num(4, 'ppid'),
    pgrp: num(5, 'pgrp'),
    session: num(6, 'session'),
    tty_nr: num(7, 'tty_nr'),
    tpgid: num(8, 'tpgid'),
    flags: num(9, 'flags'),
    minflt: num(10, 'minflt'),
    majflt: num(12, 'majflt'),
    utime: num(14, 'utime'),
    stime: num(15, 'stime'),
    priority: num(18, 'priority'),
    nice: num(19, 'nice'),
    num_threads: num(20, 'num_threads'),
    starttime: big(22, 'starttime'),
    vsize: big(23, 'vsize'),
    rss: num(24, 'rss'),
    start_code: big(26, 'startcode'),
    end_code: big(27, 'endcode'),
    start_stack: big(28, 'startstack'),
    exit_signal: num(38, 'exit_signal'),
    processor: num(39, 'processor'),
    rt_priority: num(40, 'rt_priority'),
    policy: num(41, 'policy'),
    start_data: big(45, 'start_data'),
    end_data: big(46, 'end_data'),
    start_brk: big(47, 'start_brk'),
    arg_start: big(48, 'arg_start'),
    arg_end: big(49, 'arg_end'),
    env_start: big(50, 'env_start'),
    env_end: big(51, 'env_end'),
    exit_code: num(52, 'exit_code'),
  };
}

// ---------------------------------------------------------------------------------------------
// status

export interface ProcStatus {
  name: string;
  /** Absent on kernels before 4.7. */
  umask: number | undefined;
  /** One letter, as in stat. */
  state: string;
  tgid: number;
  pid: number;
  ppid: number;
  tracerPid: number;
  /** [real, effective, saved, filesystem] */
  uid: [number, number, number, number];
  gid: [number, number, number, number];
  groups: number[];
  sigQ: { queued: number; limit: number };
  /** Thread-directed pending signals: bit (n - 1) is signal n, as in every mask below. */
  sigPnd: bigint;
  /** Process-directed (shared) pending signals. */
  shdPnd: bigint;
  sigBlk: bigint;
  sigIgn: bigint;
  sigCgt: bigint;
  capInh: bigint;
  capPrm: bigint;
  capEff: bigint;
  capBnd: bigint;
  capAmb: bigint;
  noNewPrivs: boolean;
  /** 0 none, 1 strict, 2 filter. */
  seccomp: number;
  seccompFilters: number;
  threads: number;
  /** Ids in each PID namespace, outermost first (the last one is in the process's own namespace). */
  nsTgid: number[];
  nsPid: number[];
  nsPgid: number[];
  nsSid: number[];
  /** Every line as text, keyed by its name ("VmRSS", "Cpus_allowed_list", ...). */
  fields: Record<string, string>;
}

const ESCAPES: Record<string, string> = {
  n: '\n', t: '\t', r: '\r', f: '\f', v: '\v', a: '\x07', e: '\x1b', '\\': '\\', '"': '"',
};

// The kernel escapes control characters, backslash and '"' in the Name: line.
function unescapeName(s: string): string {
  return s.replace(/\\([ntrfvae\\"])/g, (_, c: string) => ESCAPES[c]!);
}

/** /proc/PID/status, or /proc/PID/task/TID/status. */
export function readStatus(pid: number, tid?: number): ProcStatus {
  const path = procPath(pid, tid, 'status');
  const fields: Record<string, string> = {};
  for (const line of readText(path).split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  const field = (key: string): string => {
    const v = fields[key];
    if (v === undefined) throw new ProcError(path, `no ${key}: line`);
    return v;
  };
  const num = (key: string) => parseDec(path, key, field(key));
  const hex = (key: string) => parseHexBig(path, key, field(key));
  const list = (key: string) => (fields[key] ?? '').split(/\s+/).filter(Boolean).map((s) => parseDec(path, key, s));
  const four = (key: string): [number, number, number, number] => {
    const v = list(key);
    if (v.length !== 4) throw new ProcError(path, `${key}: expected 4 ids, found ${v.length}`);
    return [v[0]!, v[1]!, v[2]!, v[3]!];
  };
  const sigQ = /^(\d+)\/(\d+)$/.exec(field('SigQ'));
  if (!sigQ) throw new ProcError(path, `SigQ: cannot parse ${fields.SigQ}`);
  return {
    name: unescapeName(field('Name')),
    umask: fields.Umask === undefined ? undefined : parseInt(fields.Umask, 8),
    state: field('State').charAt(0),
    tgid: num('Tgid'),
    pid: num('Pid'),
    ppid: num('PPid'),
    tracerPid: num('TracerPid'),
    uid: four('Uid'),
    gid: four('Gid'),
    groups: list('Groups'),
    sigQ: { queued: Number(sigQ[1]), limit: Number(sigQ[2]) },
    sigPnd: hex('SigPnd'),
    shdPnd: hex('ShdPnd'),
    sigBlk: hex('SigBlk'),
    sigIgn: hex('SigIgn'),
    sigCgt: hex('SigCgt'),
    capInh: hex('CapInh'),
    capPrm: hex('CapPrm'),
    capEff: hex('CapEff'),
    capBnd: hex('CapBnd'),
    capAmb: hex('CapAmb'),
    noNewPrivs: num('NoNewPrivs') !== 0,
    seccomp: num('Seccomp'),
    seccompFilters: fields.Seccomp_filters === undefined ? 0 : num('Seccomp_filters'),
    threads: num('Threads'),
    nsTgid: list('NStgid'),
    nsPid: list('NSpid'),
    nsPgid: list('NSpgid'),
    nsSid: list('NSsid'),
    fields,
  };
}

// ---------------------------------------------------------------------------------------------
// maps, smaps, map_files

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;

export interface MapEntry {
  start: bigint;
  end: bigint;
  /** As printed: 'rwxp', 'r--s', ... */
  perms: string;
  /** PROT_READ | PROT_WRITE | PROT_EXEC bits. */
  prot: number;
  /** 's' in perms: MAP_SHARED. */
  shared: boolean;
  offset: bigint;
  /** 'MM:mm' in hex, as printed. */
  dev: string;
  major: number;
  minor: number;
  inode: number;
  /**
   * '' for anonymous memory; '[heap]', '[stack]', '[vdso]', '[vvar]', '[vvar_vclock]',
   * '[vsyscall]', '[anon:NAME]' as printed; a file path without its ' (deleted)' suffix.
   * The kernel prints a newline in a path as '\012' and nothing else escaped, so a path is only
   * exact from readMapFilesLink.
   */
  path: string;
  /** The file was unlinked (path ended with ' (deleted)'); also set for shared anonymous memory. */
  deleted: boolean;
}

const MAPS_LINE = /^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][sp]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+)(?: +(.*))?$/;
const DELETED = ' (deleted)';

function parseMapsLine(path: string, line: string): MapEntry {
  const m = MAPS_LINE.exec(line);
  if (!m) throw new ProcError(path, `cannot parse line: ${line}`);
  const perms = m[3]!;
  let file = m[8] ?? '';
  const deleted = file.endsWith(DELETED);
  if (deleted) file = file.slice(0, -DELETED.length);
  return {
    start: BigInt('0x' + m[1]),
    end: BigInt('0x' + m[2]),
    perms,
    prot: (perms[0] === 'r' ? PROT_READ : 0) | (perms[1] === 'w' ? PROT_WRITE : 0) | (perms[2] === 'x' ? PROT_EXEC : 0),
    shared: perms[3] === 's',
    offset: BigInt('0x' + m[4]),
    dev: `${m[5]}:${m[6]}`,
    major: parseInt(m[5]!, 16),
    minor: parseInt(m[6]!, 16),
    inode: parseDec(path, 'inode', m[7]),
    path: file,
    deleted,
  };
}

/** /proc/PID/maps, in address order. */
export function readMaps(pid: number): MapEntry[] {
  const path = `/proc/${pid}/maps`;
  return readText(path)
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => parseMapsLine(path, line));
}

export interface SmapsEntry extends MapEntry {
  /** Two-letter VmFlags: rd wr ex sh mr mw me ms gd pf dw lo io sr rr dc de ac nr ht sf nl ar wf dd sd mm hg nh mg um uw ss sl bt ... */
  vmFlags: string[];
  /** kB, like every size below. */
  size: number;
  rss: number;
  pss: number;
  privateDirty: number;
  sharedDirty: number;
  anonymous: number;
  swap: number;
  /** Every "Name: N kB" line, in kB. */
  kb: Record<string, number>;
  /** Every other "Name: value" line (THPeligible, ProtectionKey, ...) except VmFlags. */
  other: Record<string, string>;
}

const HEADER = /^[0-9a-f]+-[0-9a-f]+ /;

/** /proc/PID/smaps: the maps entries with their page counters and VmFlags. */
export function readSmaps(pid: number): SmapsEntry[] {
  const path = `/proc/${pid}/smaps`;
  const out: SmapsEntry[] = [];
  let cur: SmapsEntry | undefined;
  for (const line of readText(path).split('\n')) {
    if (line === '') continue;
    if (HEADER.test(line)) {
      cur = {
        ...parseMapsLine(path, line),
        vmFlags: [], size: 0, rss: 0, pss: 0, privateDirty: 0, sharedDirty: 0, anonymous: 0, swap: 0,
        kb: {}, other: {},
      };
      out.push(cur);
      continue;
    }
    const colon = line.indexOf(':');
    if (cur === undefined || colon < 0) throw new ProcError(path, `unexpected line: ${line}`);
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (key === 'VmFlags') {
      cur.vmFlags = value.split(/\s+/).filter(Boolean);
      continue;
    }
    const kb = /^(\d+) kB$/.exec(value);
    if (kb) cur.kb[key] = Number(kb[1]);
    else cur.other[key] = value;
  }
  for (const e of out) {
    e.size = e.kb.Size ?? 0;
    e.rss = e.kb.Rss ?? 0;
    e.pss = e.kb.Pss ?? 0;
    e.privateDirty = e.kb.Private_Dirty ?? 0;
    e.sharedDirty = e.kb.Shared_Dirty ?? 0;
    e.anonymous = e.kb.Anonymous ?? 0;
    e.swap = e.kb.Swap ?? 0;
  }
  return out;
}

/** The /proc/PID/map_files entry of a mapping: named start-end in lowercase hex without 0x. */
export function mapFilesPath(pid: number, start: bigint, end: bigint): string {
  return `/proc/${pid}/map_files/${start.toString(16)}-${end.toString(16)}`;
}

/** The exact path of the file behind a mapping (with ' (deleted)' when unlinked). */
export function readMapFilesLink(pid: number, start: bigint, end: bigint): string {
  return readLink(mapFilesPath(pid, start, end));
}

// ---------------------------------------------------------------------------------------------
// pagemap

export const PAGE_SIZE = 4096;
export const PM_PRESENT = 1n << 63n;
export const PM_SWAP = 1n << 62n;
export const PM_FILE = 1n << 61n;
export const PM_UFFD_WP = 1n << 57n;
export const PM_EXCLUSIVE = 1n << 56n;
/** Never set on this kernel (no soft-dirty tracking); see DESIGN 6. */
export const PM_SOFT_DIRTY = 1n << 55n;
/** Bits 0-54: the page frame number when present (zero without CAP_SYS_ADMIN), else swap type/offset. */
export const PM_PFN_MASK = (1n << 55n) - 1n;

const PAGE = BigInt(PAGE_SIZE);

/** An open /proc/PID/pagemap, for scanning many ranges with one fd. */
export interface Pagemap {
  readonly pid: number;
  readonly fd: number;
  /**
   * Entries of the pages in [start, end) (page aligned), one u64 per page. Without `buf` the
   * result is a view of a buffer this object reuses: it is valid until the next read. With a
   * `buf` of at least as many entries, a view of that.
   */
  read(start: bigint, end: bigint, buf?: BigUint64Array): BigUint64Array;
  close(): void;
}

export function openPagemap(pid: number): Pagemap {
  const path = `/proc/${pid}/pagemap`;
  const fd = fsCall(path, () => fs.openSync(path, 'r'));
  let own = new BigUint64Array(0);
  let closed = false;
  return {
    pid,
    fd,
    read(start: bigint, end: bigint, buf?: BigUint64Array): BigUint64Array {
      if (closed) throw new ProcError(path, 'read after close');
      if (start % PAGE !== 0n || end % PAGE !== 0n || end < start) {
        throw new ProcError(path, `bad range ${start.toString(16)}-${end.toString(16)}`);
      }
      const pages = Number((end - start) / PAGE);
      let target: BigUint64Array;
      if (buf !== undefined) {
        if (buf.length < pages) throw new ProcError(path, `buffer of ${buf.length} entries for ${pages} pages`);
        target = buf.subarray(0, pages);
      } else {
        // Grow by doubling so scanning VMAs of growing sizes does not reallocate every time.
        if (own.length < pages) own = new BigUint64Array(Math.max(pages, own.length * 2));
        target = own.subarray(0, pages);
      }
      const bytes = new Uint8Array(target.buffer, target.byteOffset, pages * 8);
      let done = 0;
      // Positions above 2^53 occur (the vsyscall page): pass them as bigint.
      const base = (start / PAGE) * 8n;
      while (done < bytes.length) {
        const n = fsCall(path, () => fs.readSync(fd, bytes, done, bytes.length - done, base + BigInt(done)));
        if (n === 0) break; // beyond the task's address space: nothing to report
        done += n;
      }
      bytes.fill(0, done);
      return target;
    },
    close(): void {
      if (closed) return;
      closed = true;
      fsCall(path, () => fs.closeSync(fd));
    },
  };
}

/** One-shot pagemap read of [start, end); see Pagemap.read. */
export function readPagemap(pid: number, start: bigint, end: bigint, buf?: BigUint64Array): BigUint64Array {
  const pm = openPagemap(pid);
  try {
    const entries = pm.read(start, end, buf);
    // The reused buffer dies with pm: hand out a copy only when the caller gave none.
    return buf === undefined ? entries.slice() : entries;
  } finally {
    pm.close();
  }
}

// ---------------------------------------------------------------------------------------------
// fds

export interface Fdinfo {
  pos: bigint;
  /** f_flags (O_* bits, printed in octal). */
  flags: number;
  mntId: number;
  ino: number;
  /** Every other single "key: value" line: eventfd-count, eventfd-id, sigmask, clockid, ticks, ... */
  extra: Record<string, string>;
  /** Record lines that repeat per entry, as printed: epoll "tfd:", inotify/fanotify marks, "lock:". */
  lines: string[];
}

const FDINFO_RECORDS = new Set(['tfd', 'inotify', 'fanotify', 'lock']);

/** /proc/PID/fdinfo/FD. */
export function readFdinfo(pid: number, fd: number): Fdinfo {
  const path = `/proc/${pid}/fdinfo/${fd}`;
  const extra: Record<string, string> = {};
  const lines: string[] = [];
  for (const line of readText(path).split('\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    const key = colon < 0 ? '' : line.slice(0, colon);
    if (colon < 0 || FDINFO_RECORDS.has(key.split(' ')[0]!)) lines.push(line.trimEnd());
    else extra[key] = line.slice(colon + 1).trim();
  }
  const take = (key: string): string => {
    const v = extra[key];
    if (v === undefined) throw new ProcError(path, `no ${key}: line`);
    delete extra[key];
    return v;
  };
  const pos = parseDecBig(path, 'pos', take('pos'));
  const flags = take('flags');
  if (!/^[0-7]+$/.test(flags)) throw new ProcError(path, `flags: not octal: ${flags}`);
  return { pos, flags: parseInt(flags, 8), mntId: parseDec(path, 'mnt_id', take('mnt_id')), ino: parseDec(path, 'ino', take('ino')), extra, lines };
}

/** Open fd numbers of PID, ascending. */
export function listFds(pid: number): number[] {
  return readDirNumbers(`/proc/${pid}/fd`);
}

/** '/tmp/x', '/tmp/x (deleted)', 'pipe:[123]', 'socket:[456]', 'anon_inode:[eventfd]', ... */
export function readFdLink(pid: number, fd: number): string {
  return readLink(`/proc/${pid}/fd/${fd}`);
}

// ---------------------------------------------------------------------------------------------
// mountinfo

export interface MountEntry {
  mountId: number;
  parentId: number;
  /** The filesystem's device number (st_dev of its files, on most filesystems). */
  major: number;
  minor: number;
  /** The directory of the filesystem seen at the mount point ('/' unless a bind mount of a part). */
  root: string;
  mountPoint: string;
  fsType: string;
}

// Paths in mountinfo have space, tab, newline and backslash written as \ooo octal escapes.
const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** /proc/PID/mountinfo (PID may be 'self'), in the kernel's order. */
export function readMountinfo(pid: number | 'self'): MountEntry[] {
  const path = `/proc/${pid}/mountinfo`;
  return readText(path).split('\n').filter((l) => l !== '').map((line) => {
    const f = line.split(' ');
    const dash = f.indexOf('-', 6);
    const dev = /^(\d+):(\d+)$/.exec(f[2] ?? '');
    if (f.length < 10 || dash < 0 || !dev) throw new ProcError(path, `cannot parse line: ${line}`);
    return {
      mountId: parseDec(path, 'mount id', f[0]),
      parentId: parseDec(path, 'parent id', f[1]),
      major: Number(dev[1]),
      minor: Number(dev[2]),
      root: unescapeOctal(f[3]!),
      mountPoint: unescapeOctal(f[4]!),
      fsType: f[dash + 1]!,
    };
  });
}

// ---------------------------------------------------------------------------------------------
// auxv

export const AT_NULL = 0n;

/** /proc/PID/auxv as the kernel keeps it: u64 pairs, ending with the AT_NULL pair. */
export function readAuxvRaw(pid: number): Buffer {
  const path = `/proc/${pid}/auxv`;
  return fsCall(path, () => fs.readFileSync(path));
}

/** The [type, value] pairs of the auxiliary vector, up to but excluding AT_NULL. */
export function readAuxv(pid: number): Array<[bigint, bigint]> {
  const raw = readAuxvRaw(pid);
  if (raw.length % 16 !== 0) throw new ProcError(`/proc/${pid}/auxv`, `size ${raw.length} is not a multiple of 16`);
  const out: Array<[bigint, bigint]> = [];
  for (let off = 0; off < raw.length; off += 16) {
    const type = raw.readBigUInt64LE(off);
    if (type === AT_NULL) break;
    out.push([type, raw.readBigUInt64LE(off + 8)]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// threads, children

/** Thread ids of PID (its task/ directory), ascending. */
export function listThreads(pid: number): number[] {
  return readDirNumbers(`/proc/${pid}/task`);
}

/** Children of every thread of PID, ascending. */
export function listChildren(pid: number): number[] {
  const all = new Set<number>();
  for (const tid of listThreads(pid)) {
    const path = `/proc/${pid}/task/${tid}/children`;
    let text: string;
    try {
      text = fs.readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // the thread exited meanwhile
      throw new ProcError(path, (err as Error).message, err);
    }
    for (const s of text.split(' ')) if (s.trim() !== '') all.add(parseDec(path, 'child pid', s.trim()));
  }
  return [...all].sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------
// POSIX timers

export interface PosixTimer {
  id: number;
  signal: number;
  /** sigev_value (sival_ptr; sival_int in its low 32 bits). */
  sigevValue: bigint;
  /** As printed: 'signal', 'none' or 'thread'. */
  notify: string;
  /** Whether the signal goes to one thread (SIGEV_THREAD_ID) rather than the process. */
  toThread: boolean;
  /** The process (or with toThread, the thread) notified. */
  notifyPid: number;
  /** Set when toThread. */
  notifyTid?: number;
  clockId: number;
}

/** /proc/PID/timers: timers made by timer_create; their current time is not here. */
export function readTimers(pid: number): PosixTimer[] {
  const path = `/proc/${pid}/timers`;
  const out: PosixTimer[] = [];
  let cur: Partial<PosixTimer> | undefined;
  const finish = () => {
    if (cur === undefined) return;
    const missing = ['signal', 'notify', 'clockId'].filter((k) => !(k in cur!));
    if (missing.length > 0) throw new ProcError(path, `timer ${cur.id}: no ${missing.join(', ')}`);
    out.push(cur as PosixTimer);
  };
  for (const line of readText(path).split('\n')) {
    if (line === '') continue;
    let m: RegExpExecArray | null;
    if ((m = /^ID: (-?\d+)$/.exec(line))) {
      finish();
      cur = { id: Number(m[1]) };
    } else if (cur !== undefined && (m = /^signal: (\d+)\/([0-9a-f]+)$/.exec(line))) {
      cur.signal = Number(m[1]);
      cur.sigevValue = BigInt('0x' + m[2]);
    } else if (cur !== undefined && (m = /^notify: (\w+)\/(pid|tid)\.(\d+)$/.exec(line))) {
      cur.notify = m[1]!;
      cur.toThread = m[2] === 'tid';
      cur.notifyPid = Number(m[3]);
      if (cur.toThread) cur.notifyTid = cur.notifyPid;
    } else if (cur !== undefined && (m = /^ClockID: (-?\d+)$/.exec(line))) {
      cur.clockId = Number(m[1]);
    } else {
      throw new ProcError(path, `unexpected line: ${line}`);
    }
  }
  finish();
  return out;
}

// ---------------------------------------------------------------------------------------------
// small files and links

/** Arguments of PID (empty for a zombie or a kernel thread). */
export function readCmdline(pid: number): string[] {
  const text = readText(`/proc/${pid}/cmdline`);
  if (text === '') return [];
  const parts = text.split('\0');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}

export function readComm(pid: number, tid?: number): string {
  return readText(procPath(pid, tid, 'comm')).replace(/\n$/, '');
}

export function readExeLink(pid: number): string {
  return readLink(`/proc/${pid}/exe`);
}

export function readCwdLink(pid: number): string {
  return readLink(`/proc/${pid}/cwd`);
}

export function readRootLink(pid: number): string {
  return readLink(`/proc/${pid}/root`);
}

export const RLIM_INFINITY = 0xffffffffffffffffn;

/** RLIMIT_* names in resource number order, which is also the order of /proc/PID/limits. */
export const RLIMIT_NAMES = [
  'RLIMIT_CPU', 'RLIMIT_FSIZE', 'RLIMIT_DATA', 'RLIMIT_STACK', 'RLIMIT_CORE', 'RLIMIT_RSS',
  'RLIMIT_NPROC', 'RLIMIT_NOFILE', 'RLIMIT_MEMLOCK', 'RLIMIT_AS', 'RLIMIT_LOCKS',
  'RLIMIT_SIGPENDING', 'RLIMIT_MSGQUEUE', 'RLIMIT_NICE', 'RLIMIT_RTPRIO', 'RLIMIT_RTTIME',
] as const;

export interface Rlimit {
  /** The index is the resource number. */
  resource: (typeof RLIMIT_NAMES)[number];
  /** As printed: 'Max open files'. */
  description: string;
  /** RLIM_INFINITY for 'unlimited'. */
  soft: bigint;
  hard: bigint;
  /** 'seconds', 'bytes', ... or '' */
  units: string;
}

/** /proc/PID/limits, indexed by resource number (RLIMIT_CPU = 0 ... RLIMIT_RTTIME = 15). */
export function readLimits(pid: number): Rlimit[] {
  const path = `/proc/${pid}/limits`;
  const rows = readText(path).split('\n').slice(1).filter((l) => l.trim() !== '');
  if (rows.length !== RLIMIT_NAMES.length) throw new ProcError(path, `expected ${RLIMIT_NAMES.length} limits, found ${rows.length}`);
  const value = (s: string) => (s === 'unlimited' ? RLIM_INFINITY : parseDecBig(path, 'limit', s));
  return rows.map((row, i) => {
    const m = /^(.+?)\s+(\d+|unlimited)\s+(\d+|unlimited)\s*(\S*)\s*$/.exec(row);
    if (!m) throw new ProcError(path, `cannot parse line: ${row}`);
    return { resource: RLIMIT_NAMES[i]!, description: m[1]!, soft: value(m[2]!), hard: value(m[3]!), units: m[4]! };
  });
}
