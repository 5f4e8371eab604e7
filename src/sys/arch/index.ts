import { arch as nodeArch } from 'node:process';
import type { Arch } from './types.js';
import { x86_64 } from './x86_64/index.js';

export type { Arch, Regs, SyscallName } from './types.js';

const byNodeName: Record<string, Arch> = { x64: x86_64 };

/** The architecture ckpt runs on; ckpt refuses to start anywhere it has no register layout for. */
export function hostArch(): Arch {
  const a = byNodeName[nodeArch];
  if (!a) throw new Error(`unsupported architecture: ${nodeArch} (ckpt supports x86_64)`);
  return a;
}
