// The differential model with the kernel as the client: random op sequences
// (test/support/fs-model.ts) applied through a real /dev/fuse mount of the
// memory backend and to a native directory; results and final trees must agree.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyOp, asHostUser, compareTrees, generateOps, hostAdapter, runDifferential, type Op } from '../support/fs-model.ts';
import { forceUnmount, makeTempDir, mountOurs, requireFuse, type OurMount } from '../support/mount-helpers.ts';

const temps: string[] = [];
let mount: OurMount | undefined;

after(async () => {
  if (mount) {
    await mount.stop().catch(() => forceUnmount(mount!.mountpoint));
  }
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

for (const cache of ['auto', 'never', 'always'] as const) {
  test(`memory backend through /dev/fuse (--cache ${cache}) agrees with a native directory`, { timeout: 60_000 }, async () => {
    requireFuse();
    const saved = process.umask(0o022);
    const native = makeTempDir('memfs-model-native-');
    const seedDir = makeTempDir('memfs-model-seed-');
    temps.push(native, seedDir);
    chmodSync(native, 0o755);
    mount = await mountOurs({ sharedDir: seedDir, fs: 'memory', cache, xattr: true });
    try {
      const budgetMs = Number(process.env.FS_MODEL_BUDGET_MS ?? 2000);
      const deadline = Date.now() + budgetMs;
      const seen = new Set<string>();
      let ops = 0;
      for (let seed = 1; seed <= 3 || Date.now() < deadline; seed++) {
        // One fresh subdirectory per seed on each side: no remount per run.
        const name = `seed${seed}`;
        mkdirSync(join(native, name), 0o755);
        mkdirSync(join(mount.mountpoint, name), 0o755);
        const a = hostAdapter(join(native, name));
        const b = hostAdapter(join(mount.mountpoint, name));
        const list = generateOps(seed, 300);
        const res = runDifferential([a, b], list, { deadline: seed <= 3 ? undefined : deadline });
        if (res.mismatches.length) {
          const upto = list.slice(0, res.applied);
          assert.fail(
            `seed ${seed}: ${res.mismatches.slice(0, 5).join('\n')}\n` +
              `ops leading there (last 15 of ${upto.length}):\n${upto.slice(-15).map((o: Op) => JSON.stringify(o)).join('\n')}` +
              `\n--- server output ---\n${mount.output().slice(-2000)}`,
          );
        }
        for (const e of res.errnos.keys()) seen.add(e);
        ops += res.applied;
      }
      for (const e of ['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR']) assert.ok(seen.has(e), `no op ended in ${e} in ${ops} ops`);
      console.log(`# --cache ${cache}: ${ops} ops through the mount agreed with native`);
    } finally {
      process.umask(saved);
      await mount.stop();
      mount = undefined;
    }
  });
}

test('as uid 1000 through /dev/fuse: permission errors agree with a native directory', { timeout: 60_000 }, async () => {
  requireFuse();
  const saved = process.umask(0o022);
  const native = makeTempDir('memfs-model-native-');
  const seedDir = makeTempDir('memfs-model-seed-');
  temps.push(native, seedDir);
  chmodSync(native, 0o755);
  chmodSync(seedDir, 0o755); // the memory root takes the seed directory's mode
  mount = await mountOurs({ sharedDir: seedDir, fs: 'memory', cache: 'auto', xattr: true });
  try {
    const budgetMs = Number(process.env.FS_MODEL_BUDGET_MS ?? 2000);
    const deadline = Date.now() + budgetMs;
    const seen = new Set<string>();
    let ops = 0;
    for (let seed = 1000; seed < 1003 || Date.now() < deadline; seed++) {
      // Like /tmp: root-owned, sticky, world-writable, with root-owned things inside.
      const roots = [join(native, `u${seed}`), join(mount.mountpoint, `u${seed}`)];
      for (const r of roots) {
        mkdirSync(r);
        chmodSync(r, 0o1777);
        mkdirSync(join(r, 'a'), 0o755);
        writeFileSync(join(r, 'b'), 'root file');
        chmodSync(join(r, 'b'), 0o644);
      }
      const [a, b] = roots.map((r) => hostAdapter(r)) as [ReturnType<typeof hostAdapter>, ReturnType<typeof hostAdapter>];
      const list = generateOps(seed, 300, { chown: true, xattrNames: ['user.a', 'user.b'] });
      const res = asHostUser(1000, 1000, () => runDifferential([a, b], list, { deadline: seed < 1003 ? undefined : deadline, compareFinal: false }));
      if (!res.mismatches.length) res.mismatches.push(...compareTrees([a, b]));
      if (res.mismatches.length) {
        const upto = list.slice(0, res.applied);
        assert.fail(
          `seed ${seed} (uid 1000): ${res.mismatches.slice(0, 5).join('\n')}\n` +
            `ops leading there (last 15 of ${upto.length}):\n${upto.slice(-15).map((o: Op) => JSON.stringify(o)).join('\n')}`,
        );
      }
      for (const e of res.errnos.keys()) seen.add(e);
      ops += res.applied;
    }
    for (const e of ['EACCES', 'EPERM']) assert.ok(seen.has(e), `no op ended in ${e} in ${ops} ops`);
    console.log(`# uid 1000: ${ops} ops through the mount agreed with native`);
  } finally {
    process.umask(saved);
    await mount.stop();
    mount = undefined;
  }
});

test('a group member writing or truncating a setuid g+w file clears setuid/setgid, as on native', { timeout: 60_000 }, async () => {
  requireFuse();
  const native = makeTempDir('memfs-suid-native-');
  const seedDir = makeTempDir('memfs-suid-seed-');
  temps.push(native, seedDir);
  chmodSync(native, 0o755);
  chmodSync(seedDir, 0o755);
  mount = await mountOurs({ sharedDir: seedDir, fs: 'memory', cache: 'auto' });
  try {
    const results: string[] = [];
    for (const root of [native, mount.mountpoint]) {
      const lines: string[] = [];
      for (const [op, what] of [
        [{ op: 'write', path: 'f', offset: 0, length: 3, fill: 1, opts: {} }, 'write'],
        [{ op: 'truncate', path: 'f', size: 1 }, 'truncate'],
        [{ op: 'write', path: 'f', offset: 0, length: 1, fill: 2, opts: { truncate: true } }, 'O_TRUNC'],
      ] as Array<[Op, string]>) {
        const f = join(root, 'f');
        writeFileSync(f, 'data');
        chownSync(f, 1000, 1000);
        chmodSync(f, 0o6775);
        const out = asHostUser(1001, 1000, () => applyOp(hostAdapter(root), op));
        lines.push(`${what}: ${JSON.stringify(out)} mode=${(statSync(f).mode & 0o7777).toString(8)}`);
      }
      results.push(lines.join('\n'));
    }
    assert.ok(results[0]!.includes('mode=775'), `native did not clear the bits:\n${results[0]}`);
    assert.equal(results[1], results[0]);
  } finally {
    await mount.stop();
    mount = undefined;
  }
});
