// Guest assets from Debian: the cached cloud kernel has the modules a
// virtio-fs guest needs, and our ELF .modinfo reader orders them the same way
// kmod's modinfo does. Downloads the kernel package once (apt-get download).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { DEFAULT_MODULES, ensureKernel, findExecutable, resolveModules } from '../../src/guest/assets.ts';

test('the virtio-fs module closure comes dependencies first, as modinfo says', { timeout: 120_000 }, () => {
  const kernel = ensureKernel();
  assert.ok(existsSync(kernel.vmlinuz));
  const mods = resolveModules(kernel, DEFAULT_MODULES);
  const names = mods.map((m) => m.name);
  for (const n of ['virtio_ring', 'virtio', 'virtio_pci', 'fuse', 'virtiofs']) assert.ok(names.includes(n), `${n} in ${names.join(' ')}`);
  const modinfo = findExecutable('modinfo');
  assert.ok(modinfo, 'modinfo (kmod) is needed to cross-check the .modinfo reader: apt-get install kmod');
  for (const [i, m] of mods.entries()) {
    const deps = execFileSync(modinfo, ['-F', 'depends', m.path], { encoding: 'utf8' }).trim().split(',').filter(Boolean);
    for (const d of deps) assert.ok(names.indexOf(d) >= 0 && names.indexOf(d) < i, `${m.name} needs ${d} loaded first: ${names.join(' ')}`);
  }
  assert.deepEqual(resolveModules(kernel, ['virtio_blk']).map((m) => m.name).sort(), ['virtio', 'virtio_blk', 'virtio_ring'].sort());
  assert.throws(() => resolveModules(kernel, ['no_such_module_xyz']), /has no module no_such_module_xyz/);
});
