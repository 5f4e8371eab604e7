// `ckpt show`: an image as readable text or as JSON (CRIU's crit). Reads every record through
// the image module, so a damaged image is refused here as anywhere else.
import { ImageReader, type Manifest, parseHex } from '../image/index.js';
import type { CoreRecord, FdsImageRecord, FilesImageRecord, MmImageRecord, TreeRecord } from './dump.js';
import type { FdEntry, FileRecord } from './files/index.js';
import { formatSockaddr, type InetFileRecord } from './files/inet.js';
import { describeUnixFile } from './files/unix.js';

const PAGE = 4096n;

export interface ImageSummary {
  dir: string;
  manifest: Manifest;
  tree: TreeRecord;
  files: FileRecord[];
  processes: Array<{
    pid: number;
    core: CoreRecord;
    vmas: Array<MmImageRecord['vmas'][number] & { size: number; pages_saved: number }>;
    mm: Omit<MmImageRecord, 'vmas' | '$format' | 'pid'>;
    fds: Array<FdEntry & { open: FileRecord }>;
    pages: { runs: number; saved: number; bytes: number };
  }>;
}

export async function summarizeImage(dir: string): Promise<ImageSummary> {
  const reader = await ImageReader.open(dir);
  try {
    return await summarize(dir, reader);
  } finally {
    await reader.close();
  }
}

async function summarize(dir: string, reader: ImageReader): Promise<ImageSummary> {
  await reader.verify();
  const tree = await reader.record<TreeRecord>('tree');
  const files = (await reader.record<FilesImageRecord>('files')).files;
  const pids = tree.processes.filter((p) => !p.zombie).map((p) => p.pid);
  const processes: ImageSummary['processes'] = [];
  for (const pid of pids) {
    const core = await reader.record<CoreRecord>('core', pid);
    const { vmas, $format: _f, pid: _p, ...mm } = await reader.record<MmImageRecord>('mm', pid);
    const fds = (await reader.record<FdsImageRecord>('fds', pid)).fds.map((f) => ({ ...f, open: files.find((x) => x.id === f.file)! }));
    const pages = await reader.pages(pid);
    const data = pages.entries.filter((e) => e.kind === 'data');
    await pages.close();
    const savedIn = (start: bigint, end: bigint) => data.reduce((n, e) => {
      const from = e.addr > start ? e.addr : start;
      const eEnd = e.addr + BigInt(e.pages) * PAGE;
      const to = eEnd < end ? eEnd : end;
      return to > from ? n + Number((to - from) / PAGE) : n;
    }, 0);
    processes.push({
      pid, core, mm, fds,
      vmas: vmas.map((v) => {
        const start = parseHex(v.start);
        const end = parseHex(v.end);
        return { ...v, size: Number(end - start), pages_saved: savedIn(start, end) };
      }),
      pages: {
        runs: data.length,
        saved: data.reduce((n, e) => n + e.pages, 0),
        bytes: data.reduce((n, e) => n + e.pages, 0) * Number(PAGE),
      },
    });
  }
  return { dir, manifest: reader.manifest, tree, files, processes };
}

const kib = (n: number) => (n >= 1 << 20 ? `${(n / 1048576).toFixed(1)} MiB` : `${(n / 1024).toFixed(0)} KiB`);

function describeInet(f: InetFileRecord): string {
  const addr = Buffer.from(f.addr, 'base64');
  const state = f.proto === 'tcp' ? 'listening' : f.peer ? 'connected' : addr.readUInt16BE(2) ? 'bound' : 'unbound';
  return `${f.proto}${f.family === 6 ? '6' : ''} socket ${state} ${formatSockaddr(addr)}`
    + `${f.peer ? ` -> ${formatSockaddr(Buffer.from(f.peer, 'base64'))}` : ''}`
    + `${f.reuseaddr ? ' reuseaddr' : ''}${f.reuseport ? ' reuseport' : ''}${f.v6only ? ' v6only' : ''}${f.device ? ` device ${f.device}` : ''}`
    + Object.entries(f.options ?? {}).map(([k, v]) => ` ${k}=${v}`).join('')
    + `${f.queued ? `, ${f.queued.length} datagram(s) queued` : ''}`;
}

function describeFile(f: FileRecord): string {
  switch (f.kind) {
    case 'regular': return `${f.type} ${f.path}${f.deleted ? ' (deleted, saved)' : ''} pos ${f.pos} flags 0${f.flags.toString(8)}`;
    case 'device': return `device ${f.path} (${f.rdev}) flags 0${f.flags.toString(8)}`;
    case 'pipe': return `pipe ${f.pipe} ${f.end} end${f.state?.data ? ' (data saved)' : ''}`;
    case 'fifo': return `fifo ${f.path} ${f.end} end${f.state?.data ? ' (data saved)' : ''}`;
    case 'epoll': return `epoll watching ${f.targets.map((t) => `fd ${t.tfd} [${t.file ?? '?'}] events 0x${t.events.toString(16)}`).join(', ')}`;
    case 'inet': return describeInet(f);
    case 'netlink': return `netlink socket protocol ${f.protocol} port ${f.portid}${f.groups.length ? ` groups ${f.groups.join(',')}` : ''}`
      + `${f.peer ? ` connected to port ${f.peer.portid}` : ''}${f.options.length ? ` ${f.options.join(' ')}` : ''}`;
    case 'unix': return describeUnixFile(f);
    case 'memfd': return `memfd ${f.name} size ${f.size}${f.seals ? ` seals 0x${f.seals.toString(16)}` : ''} pos ${f.pos}`;
    case 'pidfd': return `pidfd of process ${f.pid}`;
    case 'eventfd': return `eventfd count ${f.count}${f.semaphore ? ' semaphore' : ''}`;
    case 'signalfd': return `signalfd mask ${f.mask}`;
    case 'inotify': return `inotify${f.flags & 0o4000 ? ' nonblocking' : ''} watching ${f.watches.map((w) => `wd ${w.wd} ${w.path} mask 0x${w.mask.toString(16)}`).join(', ') || 'nothing'}${f.unread ? `, ${f.unread} bytes of events unread (not restored)` : ''}`;
    case 'tty': return f.role === 'external' ? `terminal ${f.path} (${f.rdev}) outside the tree, a shell job's`
      : `pty ${f.index} ${f.role} ${f.path}${f.pty ? ` ${f.pty.winsize.rows}x${f.pty.winsize.cols}${f.pty.locked ? ' locked' : ''}${f.pty.packet ? ' packet mode' : ''}` : ''}`
        + `${f.exclusive ? ' exclusive' : ''} flags 0${f.flags.toString(8)}`;
    case 'timerfd': return `timerfd clock ${f.clock} interval ${f.interval[0]}s ${f.interval[1]}ns, next in ${f.value[0]}s ${f.value[1]}ns, ${f.ticks} unread`;
  }
}

export function formatImage(s: ImageSummary): string {
  const m = s.manifest;
  const out: string[] = [
    `image ${s.dir}`,
    `  format ${m.format}, ${m.arch}, kernel ${m.kernel}, page size ${m.page_size}, by ${m.tool}, ${m.created}`,
    `  root pid ${m.root_pid}${m.parent ? `, parent image ${m.parent}` : ''}, ${Object.keys(m.files).length} files`,
    `  tree: ${s.tree.processes.map((p) => `${p.pid}${p.zombie ? ' (zombie)' : ''} ppid ${p.ppid} pgid ${p.pgid} sid ${p.sid}`
      + `${p.ctty ? ` ctty [${p.ctty.file}]${p.ctty.foreground ? ` foreground ${p.ctty.foreground}` : ''}` : ''}`
      + `${p.foreground ? ' (foreground of its terminal)' : ''}`).join('; ')}`,
  ];
  for (const p of s.processes) {
    const { process: pr, creds, fs, signals, timers, threads } = p.core;
    out.push('', `process ${p.pid} (${pr.comm}) ppid ${pr.ppid} pgid ${pr.pgid} sid ${pr.sid}`);
    out.push(`  exe ${p.mm.exe}`, `  cwd ${fs.cwd}  root ${fs.root}  umask 0${fs.umask.toString(8)}`);
    out.push(`  uid ${creds.uid.join('/')} gid ${creds.gid.join('/')} groups [${creds.groups.join(',')}] caps eff ${creds.cap_effective}`);
    out.push(`  memory: ${p.vmas.length} VMAs, ${p.pages.saved} pages saved (${kib(p.pages.bytes)}) in ${p.pages.runs} runs`);
    for (const v of p.vmas) {
      const what = v.file?.path ?? v.name ?? (v.kind === 'anon' ? '' : `[${v.kind}]`);
      out.push(`    ${v.start}-${v.end} ${v.perms} ${kib(v.size).padStart(10)} ${String(v.pages_saved).padStart(7)} saved  ${v.kind.padEnd(6)} ${what}`);
    }
    out.push(`  files: ${p.fds.length}`);
    for (const f of p.fds) out.push(`    ${String(f.fd).padStart(4)}  [${f.file}] ${describeFile(f.open)}${f.cloexec ? ' cloexec' : ''}`);
    out.push(`  signals: ${signals.actions.length} handlers set, ${signals.shared_pending.length} pending for the process`);
    for (const a of signals.actions) out.push(`    sig ${String(a.sig).padStart(2)} handler ${a.handler} flags ${a.flags} mask ${a.mask}`);
    for (const t of timers.itimers) out.push(`  itimer ${t.which}: interval ${t.interval[0]}s ${t.interval[1]}µs, next in ${t.value[0]}s ${t.value[1]}µs`);
    for (const t of timers.posix) out.push(`  posix timer ${t.id}: clock ${t.clock}, ${t.notify} signal ${t.signal}, interval ${t.interval[0]}s ${t.interval[1]}ns`);
    out.push(`  threads: ${threads.length}`);
    for (const t of threads) {
      out.push(`    tid ${t.tid} ip ${t.regs.rip ?? '?'} sp ${t.regs.rsp ?? '?'} blocked ${t.blocked} pending ${t.pending.length}${t.rseq ? ` rseq ${t.rseq.ptr}` : ''}`);
    }
  }
  return `${out.join('\n')}\n`;
}
