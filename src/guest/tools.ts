// Layer: guest tooling (host side). Imports node:* and src/guest/* only.
// The guest "tools disk": a read-only ext4 image holding Debian's fio and
// every shared library `ldd` names, at their host paths, plus a `.manifest`
// listing them. /init mounts it (virtio-blk, /dev/vda) at /tools and
// symlinks each file into place (`cp -rs`). A disk rather than an initramfs layer because the
// guest then reads only the pages it touches: unpacking ~80 MB of libraries
// from the initramfs cost ~15 s per boot under TCG.

import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { findExecutable, GuestSetupError, guestCacheDir, stderrProgress, type Progress } from './assets.ts';

/** Host paths (absolute) of fio and its shared libraries, the loader included. */
export function fioFiles(): string[] {
  const fio = findExecutable('fio');
  if (!fio) throw new GuestSetupError('fio not found: install it with `apt-get install fio`');
  return [fio, ...sharedLibraries(fio)];
}

export function sharedLibraries(exe: string): string[] {
  const ldd = findExecutable('ldd');
  if (!ldd) throw new GuestSetupError('ldd not found: install it with `apt-get install libc-bin`');
  const out = execFileSync(ldd, [exe], { encoding: 'utf8' });
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "\t/lib64/ld-linux-x86-64.so.2 (0x...)"
    if (/not found/.test(line)) throw new GuestSetupError(`${exe} needs a library the host lacks: ${line.trim()}`);
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/**
 * A cached ext4 image (built with `mke2fs -d`, no root needed) holding the
 * given host files at their host paths. Keyed by the files' paths and contents.
 */
export function ensureToolsImage(name: string, files: readonly string[], progress: Progress = stderrProgress): string {
  const hash = createHash('sha256');
  for (const f of files) hash.update(`${f}\0`).update(readFileSync(f));
  const dir = join(guestCacheDir(), 'tools');
  const image = join(dir, `${name}-${hash.digest('hex').slice(0, 16)}.ext4`);
  if (existsSync(image)) return image;
  const mke2fs = findExecutable('mke2fs');
  if (!mke2fs) throw new GuestSetupError('mke2fs not found: install it with `apt-get install e2fsprogs`');
  progress(`building the ${name} tools disk (${files.length} files)`);
  mkdirSync(dir, { recursive: true });
  const staging = mkdtempSync(join(dir, `.tmp-${name}-`));
  try {
    const root = join(staging, 'root');
    let bytes = 0;
    const rel: string[] = [];
    for (const f of files) {
      const r = f.replace(/^\/+/, '');
      if (rel.includes(r)) continue;
      mkdirSync(join(root, dirname(r)), { recursive: true });
      copyFileSync(realpathSync(f), join(root, r)); // store contents, not the host's symlinks
      bytes += statSync(join(root, r)).size;
      rel.push(r);
    }
    writeFileSync(join(root, '.manifest'), rel.map((r) => `${r}\n`).join(''));
    const sizeKiB = Math.ceil((bytes * 1.25) / 1024) + 16 * 1024;
    const tmpImage = join(staging, 'image.ext4');
    execFileSync(mke2fs, ['-q', '-F', '-t', 'ext4', '-O', '^has_journal', '-m', '0', '-L', 'vfts-tools', '-d', root, tmpImage, `${sizeKiB}k`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    renameSync(tmpImage, image);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return image;
}

/** The fio tools disk. */
export function ensureFioImage(progress: Progress = stderrProgress): string {
  return ensureToolsImage('fio', fioFiles(), progress);
}
