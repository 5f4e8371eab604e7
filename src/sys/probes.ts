// Probes of the kernel features ckpt uses: each one tries the feature for real (as `criu check`
// does), rather than trusting version numbers.
import fs from 'node:fs';
import path from 'node:path';
import { cgroupMounts } from './cgroup.js';
import { PM_SOFT_DIRTY, readPagemap } from './proc.js';
import { addressOf, syscall } from './libc.js';
import * as pt from './ptrace.js';
import { findSyscallInsn, RemoteScratch, RemoteThread } from './remote.js';
import { ProcMem, readRanges } from './memory.js';
import { spawnStub } from './stub.js';
import { remoteClone3 } from './clone.js';

export interface ProbeResult {
  feature: string;
  ok: boolean;
  /** What ckpt needs the feature for. */
  usedFor: string;
  /** Needed for dump/restore to work at all (otherwise an optional extra). */
  required: boolean;
  detail?: string;
}

const NR = { prctl: 157, pidfd_open: 434, pidfd_getfd: 438, userfaultfd: 323, ioctl: 16, close: 3, getpid: 39 };
const UFFDIO_API = 0xc018aa3fn;
const UFFD_FEATURE_WP_UNPOPULATED = 1n << 13n;
const UFFD_FEATURE_WP_ASYNC = 1n << 15n;
const PAGEMAP_SCAN = 0xc0606610n;
const PR_SET_MM = 35;
const PR_SET_MM_MAP_SIZE = 15;

function attempt(feature: string, usedFor: string, required: boolean, fn: () => string | undefined): ProbeResult {
  try {
    const detail = fn();
    return { feature, ok: true, usedFor, required, ...(detail ? { detail } : {}) };
  } catch (e) {
    return { feature, ok: false, usedFor, required, detail: (e as Error).message };
  }
}

function probeUffd(): string {
  const fd = syscall('userfaultfd', NR.userfaultfd, 0o2000000 /* O_CLOEXEC */);
  try {
    const api = Buffer.alloc(24);
    api.writeBigUInt64LE(0xaan, 0);
    syscall('ioctl(UFFDIO_API)', NR.ioctl, fd, UFFDIO_API, api);
    const features = api.readBigUInt64LE(8);
    const need = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED;
    if ((features & need) !== need) throw new Error(`features 0x${features.toString(16)} lack WP_ASYNC/WP_UNPOPULATED`);
    return `features 0x${features.toString(16)}`;
  } finally {
    syscall('close', NR.close, fd);
  }
}

function probePagemapScan(): string {
  const fd = fs.openSync('/proc/self/pagemap', 'r');
  try {
    const page = Buffer.alloc(4096 * 2);
    const start = (addressOf(page) + 4095n) & ~4095n;
    const vec = Buffer.alloc(24 * 4);
    const arg = Buffer.alloc(96);
    const fields = [96n, 0n, start, start + 4096n, 0n, addressOf(vec), 4n, 0n, 0n, 0n, 8n /* PRESENT */, 8n];
    fields.forEach((v, i) => arg.writeBigUInt64LE(v, i * 8));
    syscall('ioctl(PAGEMAP_SCAN)', NR.ioctl, fd, PAGEMAP_SCAN, arg);
    return 'ioctl answered';
  } finally {
    fs.closeSync(fd);
  }
}

/** ptrace, remote syscalls and clone3 with set_tid, tried on a stub process. */
function probeStub(): { seize: string; cloneSetTid: string } {
  const stub = spawnStub();
  try {
    pt.seize(stub, pt.PTRACE_O.TRACESYSGOOD | pt.PTRACE_O.TRACECLONE | pt.PTRACE_O.TRACEFORK | pt.PTRACE_O.EXITKILL);
    pt.interrupt(stub);
    pt.wait(stub);
    const mem = new ProcMem(stub, true);
    try {
      const vdso = fs.readFileSync(`/proc/${stub}/maps`, 'utf8').split('\n').find((l) => l.endsWith('[vdso]'));
      if (!vdso) throw new Error('no vDSO');
      const [a, b] = vdso.split(' ')[0].split('-').map((x) => BigInt(`0x${x}`));
      const gadget = findSyscallInsn(mem, a, b);
      if (gadget === undefined) throw new Error('no syscall instruction in the vDSO');
      const remote = new RemoteThread(stub, gadget);
      const got = Number(remote.call('getpid'));
      if (got !== stub) throw new Error(`remote getpid gave ${got}, expected ${stub}`);
      // clone3 with set_tid: ask for a free PID above the stub's.
      const scratch = RemoteScratch.map(remote, mem);
      const max = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
      let want = stub + 1000;
      while (fs.existsSync(`/proc/${want}`) && want < max) want++;
      const r = remoteClone3(remote, scratch, 0, 17 /* SIGCHLD */, want);
      if (r < 0n) return { seize: 'ok', cloneSetTid: `failed: errno ${-r}` };
      try { process.kill(Number(r), 'SIGKILL'); } catch { /* gone */ }
      pt.tryWait(Number(r));
      if (Number(r) !== want) return { seize: 'ok', cloneSetTid: `got PID ${r}, asked for ${want}` };
      return { seize: 'ok', cloneSetTid: 'ok' };
    } finally {
      mem.close();
    }
  } finally {
    try { process.kill(stub, 'SIGKILL'); } catch { /* gone */ }
    pt.tryWait(stub);
  }
}

function cgroupV2(): string {
  const { v2 } = cgroupMounts();
  if (!v2) throw new Error('no cgroup2 hierarchy mounted');
  // cgroup.freeze exists in every non-root group; make one to see.
  const probe = fs.mkdtempSync(path.join(v2, 'ckpt-probe-'));
  try {
    if (!fs.existsSync(path.join(probe, 'cgroup.freeze'))) throw new Error('cgroup.freeze missing (kernel < 5.2)');
  } finally {
    fs.rmdirSync(probe);
  }
  return `mounted at ${v2}`;
}

function cgroupV1(): string {
  const { v1Freezer } = cgroupMounts();
  if (!v1Freezer) throw new Error('no v1 freezer hierarchy mounted');
  return `mounted at ${v1Freezer}`;
}

function probeSoftDirty(): string {
  // Kernels without CONFIG_MEM_SOFT_DIRTY accept clear_refs 4 but never set the pagemap bit.
  const page = Buffer.alloc(8192);
  const addr = (addressOf(page) + 4095n) & ~4095n;
  const offset = Number(addr - addressOf(page));
  page[offset] = 1;
  fs.writeFileSync('/proc/self/clear_refs', '4');
  page[offset] = 2;
  const entry = readPagemap(process.pid, addr, addr + 4096n)[0];
  if ((entry & PM_SOFT_DIRTY) === 0n) {
    throw new Error('kernel built without CONFIG_MEM_SOFT_DIRTY (incremental dumps use userfaultfd write-protect + PAGEMAP_SCAN)');
  }
  return 'written page marked soft-dirty';
}

export function runProbes(): ProbeResult[] {
  const results: ProbeResult[] = [];
  let stub: ReturnType<typeof probeStub> | undefined;
  let stubError = '';
  try { stub = probeStub(); } catch (e) { stubError = (e as Error).message; }
  const fromStub = (key: 'seize' | 'cloneSetTid') => () => {
    if (!stub) throw new Error(stubError);
    if (stub[key] !== 'ok') throw new Error(stub[key]);
    return undefined;
  };
  results.push(attempt('ptrace', 'freezing and driving processes (seize, interrupt, remote syscalls)', true, fromStub('seize')));
  results.push(attempt('process_vm_readv', 'reading memory in large batches', true, () => {
    const src = Buffer.from('ckpt-probe');
    const dst = Buffer.alloc(src.length);
    readRanges(process.pid, dst, 0, [{ addr: addressOf(src), len: src.length }]);
    if (!dst.equals(src)) throw new Error('read back different bytes');
    return undefined;
  }));
  results.push(attempt('pidfd_getfd', 'pulling sockets, pipes and userfaultfds out of a process', false, () => {
    const pidfd = syscall('pidfd_open', NR.pidfd_open, process.pid, 0);
    try {
      const fd = syscall('pidfd_getfd', NR.pidfd_getfd, pidfd, 0, 0);
      syscall('close', NR.close, fd);
    } finally {
      syscall('close', NR.close, pidfd);
    }
    return undefined;
  }));
  results.push(attempt('clone3 set_tid', 'restoring processes with their original PIDs', true, fromStub('cloneSetTid')));
  results.push(attempt('PR_SET_MM_MAP', 'restoring code/data/stack/arg/env bounds, auxv and exe', true, () => {
    const size = Buffer.alloc(4);
    syscall('prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE)', NR.prctl, PR_SET_MM, PR_SET_MM_MAP_SIZE, size, 0, 0);
    return `struct size ${size.readUInt32LE(0)}`;
  }));
  results.push(attempt('userfaultfd WP_ASYNC', 'incremental dumps and lazy restore', false, probeUffd));
  results.push(attempt('PAGEMAP_SCAN', 'finding written pages for incremental dumps', false, probePagemapScan));
  results.push(attempt('soft-dirty', 'incremental dumps on kernels without PAGEMAP_SCAN', false, probeSoftDirty));
  results.push(attempt('cgroup v2 freezer', 'freeze method: cgroup', false, cgroupV2));
  results.push(attempt('cgroup v1 freezer', 'freeze method: cgroup (legacy hierarchy)', false, cgroupV1));
  return results;
}

