// Restoring a tree into a new PID namespace, for when its PIDs are taken here.
//
// A namespace is made with unshare(1) (--pid --fork --mount-proc): its init is a shell that
// runs ckpt's own restore inside (there every PID of the image is free and /proc shows the
// namespace's PIDs, so the restore is the ordinary one), then stays on as the namespace's init
// (`exec sleep`): the namespace lives as long as it does.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RestoreError } from './restore.js';

export interface NamespacedRestore {
  /** PID of the restored root inside its namespace (its original PID). */
  pid: number;
  /** The same process seen from here. */
  hostPid: number;
  /** The namespace's init, seen from here: killing it ends the namespace. */
  initPid: number;
}

const ckptBin = fileURLToPath(new URL('../../../bin/ckpt.js', import.meta.url));

/** The process of this PID namespace ns whose PID inside it is nsPid, seen from here. */
function hostPidOf(nsInode: string, nsPid: number): number | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readlinkSync(`/proc/${entry}/ns/pid`) !== nsInode) continue;
      const nspid = /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1].trim().split(/\s+/);
      if (nspid && Number(nspid[nspid.length - 1]) === nsPid) return Number(entry);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

export async function restoreInNewPidNamespace(dir: string, signal?: AbortSignal): Promise<NamespacedRestore> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-pidns-'));
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const files = { pid: path.join(work, 'pid'), rc: path.join(work, 'rc'), err: path.join(work, 'stderr') };
  const script = `${q(process.execPath)} ${q(ckptBin)} restore -D ${q(dir)} -d --pidfile ${q(files.pid)} `
    + `>/dev/null 2>${q(files.err)}; echo $? > ${q(files.rc)}; exec sleep 2147483647`;
  const unshare = spawn('unshare', ['--pid', '--fork', '--mount-proc', '/bin/sh', '-c', script], {
    detached: true, stdio: 'ignore',
  });
  const unsharePid = unshare.pid;
  unshare.unref();
  try {
    if (unsharePid === undefined) throw new RestoreError('cannot start unshare(1) for a new PID namespace');
    const deadline = Date.now() + 60_000;
    while (!fs.existsSync(files.rc) || fs.readFileSync(files.rc, 'utf8').trim() === '') {
      if (Date.now() > deadline) throw new RestoreError('the restore in the new PID namespace did not finish within 60 s');
      signal?.throwIfAborted();
      await new Promise((r) => setTimeout(r, 20));
    }
    // unshare's child is the namespace's init (PID 1 there).
    const initPid = Number(fs.readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim().split(/\s+/)[0]);
    const rc = Number(fs.readFileSync(files.rc, 'utf8').trim());
    if (rc !== 0) {
      const why = fs.readFileSync(files.err, 'utf8').split('\n').filter((l) => l.startsWith('ckpt')).join(' ').replace(/^ckpt: /, '');
      try { process.kill(initPid, 'SIGKILL'); } catch { /* gone */ }
      throw new RestoreError(`restore in a new PID namespace failed: ${why || `exit ${rc}`}`);
    }
    const pid = Number(fs.readFileSync(files.pid, 'utf8').trim());
    const hostPid = hostPidOf(fs.readlinkSync(`/proc/${initPid}/ns/pid`), pid);
    if (hostPid === undefined) throw new RestoreError(`restored process ${pid} is not in its new PID namespace`);
    return { pid, hostPid, initPid };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
