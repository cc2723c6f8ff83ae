// The differential model with the kernel as the client: random op sequences
// (test/support/fs-model.ts) applied through a real /dev/fuse mount (memory
// backend in every cache mode, passthrough in the default one) and to a native
// directory; results and final trees must agree, as root and as uid 1000.
// One mount per (backend, cache) pair, shared by its subtests: each seed works
// in its own fresh subdirectory on both sides.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyOp, asHostUser, compareTrees, generateOps, hostAdapter, runDifferential, type Op } from '../support/fs-model.ts';
import { forceUnmount, makeTempDir, mountOurs, requireFuse, type OurMount } from '../support/mount-helpers.ts';

type Backend = 'memory' | 'passthrough';
const RUNS: Array<{ backend: Backend; cache: 'auto' | 'never' | 'always'; users: boolean }> = [
  { backend: 'memory', cache: 'auto', users: true },
  { backend: 'memory', cache: 'never', users: false },
  { backend: 'memory', cache: 'always', users: false },
  { backend: 'passthrough', cache: 'auto', users: true },
];

const budgetMs = () => Number(process.env.FS_MODEL_BUDGET_MS ?? 2000);

function failWith(seed: number, who: string, list: Op[], applied: number, mismatches: string[], output: string): never {
  const upto = list.slice(0, applied);
  assert.fail(
    `seed ${seed} (${who}): ${mismatches.slice(0, 5).join('\n')}\n` +
      `ops leading there (last 15 of ${upto.length}):\n${upto.slice(-15).map((o) => JSON.stringify(o)).join('\n')}` +
      `\n--- server output ---\n${output.slice(-2000)}`,
  );
}

for (const { backend, cache, users } of RUNS) {
  describe(`${backend} through /dev/fuse (--cache ${cache})`, { concurrency: false }, () => {
    let mount: OurMount | undefined;
    let native: string;
    let seedDir: string;
    let savedUmask: number;

    before(async () => {
      requireFuse();
      savedUmask = process.umask(0o022);
      native = makeTempDir('fs-model-native-');
      seedDir = makeTempDir('fs-model-seed-');
      chmodSync(native, 0o755);
      chmodSync(seedDir, 0o755); // the memory root takes the seed directory's mode
      mount = await mountOurs({ sharedDir: seedDir, fs: backend, cache, xattr: true });
    });

    after(async () => {
      process.umask(savedUmask);
      if (mount) await mount.stop().catch(() => forceUnmount(mount!.mountpoint));
      for (const d of [native, seedDir]) if (d) rmSync(d, { recursive: true, force: true });
    });

    it('random op sequences as root agree with a native directory', { timeout: 60_000 }, () => {
      const deadline = Date.now() + budgetMs();
      const seen = new Set<string>();
      let ops = 0;
      // A fixed minimum of whole seeds keeps the errno check deterministic on a loaded box.
      for (let seed = 1; seed <= 3 || Date.now() < deadline; seed++) {
        const name = `seed${seed}`;
        mkdirSync(join(native, name), 0o755);
        mkdirSync(join(mount!.mountpoint, name), 0o755);
        const list = generateOps(seed, 300);
        const sides = [hostAdapter(join(native, name)), hostAdapter(join(mount!.mountpoint, name))];
        const res = runDifferential(sides, list, { deadline: seed <= 3 ? undefined : deadline });
        if (res.mismatches.length) failWith(seed, 'root', list, res.applied, res.mismatches, mount!.output());
        for (const e of res.errnos.keys()) seen.add(e);
        ops += res.applied;
      }
      for (const e of ['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR']) assert.ok(seen.has(e), `no op ended in ${e} in ${ops} ops`);
      console.log(`# ${backend} --cache ${cache}: ${ops} ops through the mount agreed with native`);
    });

    if (!users) return;

    it('as uid 1000: permission errors agree with a native directory', { timeout: 60_000 }, () => {
      const deadline = Date.now() + budgetMs();
      const seen = new Set<string>();
      let ops = 0;
      for (let seed = 1000; seed < 1003 || Date.now() < deadline; seed++) {
        // Like /tmp: root-owned, sticky, world-writable, with root-owned things inside.
        const roots = [join(native, `u${seed}`), join(mount!.mountpoint, `u${seed}`)];
        for (const r of roots) {
          mkdirSync(r);
          chmodSync(r, 0o1777);
          mkdirSync(join(r, 'a'), 0o755);
          writeFileSync(join(r, 'b'), 'root file');
          chmodSync(join(r, 'b'), 0o644);
        }
        const sides = roots.map((r) => hostAdapter(r));
        const list = generateOps(seed, 300, { chown: true, xattrNames: ['user.a', 'user.b'] });
        const res = asHostUser(1000, 1000, () =>
          runDifferential(sides, list, { deadline: seed < 1003 ? undefined : deadline, compareFinal: false }),
        );
        // Final trees as root: the user may have locked itself out of parts.
        if (!res.mismatches.length) res.mismatches.push(...compareTrees(sides));
        if (res.mismatches.length) failWith(seed, 'uid 1000', list, res.applied, res.mismatches, mount!.output());
        for (const e of res.errnos.keys()) seen.add(e);
        ops += res.applied;
      }
      for (const e of ['EACCES', 'EPERM']) assert.ok(seen.has(e), `no op ended in ${e} in ${ops} ops`);
      console.log(`# ${backend} uid 1000: ${ops} ops through the mount agreed with native`);
    });

    it('a group member writing or truncating a setuid g+w file clears setuid/setgid, as on native', () => {
      const results: string[] = [];
      for (const base of [native, mount!.mountpoint]) {
        const root = join(base, 'suid');
        mkdirSync(root, 0o755);
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
    });
  });
}
