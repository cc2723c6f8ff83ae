// Layer: guest tooling (host side). Imports node:* and src/guest/* only.
// Fills the guest cache ahead of time (kernel, initramfs, default root fs,
// optionally the fio tools disk), so the first test or `run` does not pay for
// downloads. `node --import tsx src/guest/prepare.ts [--fio]` (scripts/setup-guest.sh).

import { pathToFileURL } from 'node:url';
import { findQemu, GuestSetupError, guestCacheDir, stderrProgress, type Progress } from './assets.ts';
import { ensureBaseInitramfs } from './initramfs.ts';
import { ensureDefaultRootfs } from './rootfs.ts';
import { ensureFioImage } from './tools.ts';

export interface PreparedGuest {
  cacheDir: string;
  qemu: string;
  kernelRelease: string;
  vmlinuz: string;
  initramfs: string;
  rootfs: string;
  fioImage?: string;
}

export function prepareGuest(options: { withFio?: boolean; progress?: Progress } = {}): PreparedGuest {
  const progress = options.progress ?? stderrProgress;
  const qemu = findQemu();
  const base = ensureBaseInitramfs({ progress });
  const rootfs = ensureDefaultRootfs(progress);
  const out: PreparedGuest = { cacheDir: guestCacheDir(), qemu, kernelRelease: base.kernel.release, vmlinuz: base.kernel.vmlinuz, initramfs: base.path, rootfs };
  if (options.withFio) out.fioImage = ensureFioImage(progress);
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const p = prepareGuest({ withFio: process.argv.includes('--fio') });
    for (const [k, v] of Object.entries(p)) process.stdout.write(`${k.padEnd(14)} ${v}\n`);
  } catch (e) {
    process.stderr.write(`${e instanceof GuestSetupError ? '' : 'internal error: '}${(e as Error).message}\n`);
    process.exitCode = 1;
  }
}
