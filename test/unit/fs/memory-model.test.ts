// Differential model test: random op sequences applied to MemoryFs (driven the
// way the kernel drives a backend) and to a real host directory through
// node:fs; every result (value or errno) and the final trees must agree.
// The host directory (ext4/tmpfs on this machine) is the oracle.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryFs } from '../../../src/fs/memory/memory-fs.ts';
import {
  asHostUser,
  compareTrees,
  countInodes,
  fileSystemAdapter,
  generateOps,
  hostAdapter,
  runDifferential,
  type Op,
} from '../../support/fs-model.ts';

let base: string;
let savedUmask: number;

before(() => {
  base = mkdtempSync(join(tmpdir(), 'memfs-model-'));
  // Both sides must apply the same umask: the adapter passes 0022 to the backend.
  savedUmask = process.umask(0o022);
});
after(() => {
  process.umask(savedUmask);
  rmSync(base, { recursive: true, force: true });
});

function pair(seed: number) {
  const dir = mkdtempSync(join(base, `seed${seed}-`));
  const st = statSync(dir);
  const mem = new MemoryFs({ rootMode: st.mode & 0o7777, rootUid: st.uid, rootGid: st.gid, cache: 'never' });
  return { dir, mem, host: hostAdapter(dir), memory: fileSystemAdapter(mem, { name: 'memory' }) };
}

test('random op sequences: MemoryFs agrees with the host file system', () => {
  // FS_MODEL_BUDGET_MS widens a run by hand (e.g. 60000); the suite keeps it short.
  const budgetMs = Number(process.env.FS_MODEL_BUDGET_MS ?? 4000);
  const deadline = Date.now() + budgetMs;
  const seen = new Map<string, number>();
  let seeds = 0;
  let ops = 0;
  // A fixed minimum of whole seeds (so a loaded machine still covers the same
  // ground and the errno check below is deterministic), then more until the budget ends.
  for (let seed = 1; seed <= 4 || Date.now() < deadline; seed++) {
    const { dir, mem, host, memory } = pair(seed);
    const list = generateOps(seed, 400);
    const res = runDifferential([host, memory], list, { deadline: seed <= 4 ? undefined : deadline });
    if (res.mismatches.length) {
      const upto = list.slice(0, res.applied);
      assert.fail(
        `seed ${seed}: ${res.mismatches.slice(0, 5).join('\n')}\n` +
          `ops leading there (last 15 of ${upto.length}):\n${upto.slice(-15).map((o: Op) => JSON.stringify(o)).join('\n')}`,
      );
    }
    for (const [k, v] of res.errnos) seen.set(k, (seen.get(k) ?? 0) + v);
    ops += res.applied;
    seeds++;
    // Nothing leaked: every handle closed, every adapter lookup forgotten, so the
    // nodes alive are exactly the inodes still linked in the tree.
    assert.equal(mem.handleCount, 0, `seed ${seed}: handles leaked`);
    assert.equal(mem.nodeCount, countInodes(memory), `seed ${seed}: nodes not freed`);
    rmSync(dir, { recursive: true, force: true });
  }
  // The run must have reached the interesting error paths, or it proves little.
  for (const e of ['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'ELOOP', 'ENODATA']) {
    assert.ok(seen.has(e), `no op ended in ${e} in ${ops} ops over ${seeds} seeds (saw ${[...seen.keys()].join(' ')})`);
  }
  console.log(`# ${ops} ops over ${seeds} seeds agreed; errnos seen: ${[...seen].map(([k, v]) => `${k}=${v}`).join(' ')}`);
});

test('the harness notices a difference', () => {
  const { dir, host, memory } = pair(0);
  try {
    // Same ops, except one side gets an extra file: the final trees must differ.
    host.write('extra', 0, Buffer.from('x'), {});
    const res = runDifferential([host, memory], [{ op: 'mkdir', path: 'a', mode: 0o755 }]);
    assert.equal(res.applied, 1);
    assert.ok(res.mismatches.some((m) => m.includes("'extra'")), res.mismatches.join('\n'));
    // and an op whose outcome differs stops the run there
    const res2 = runDifferential([host, memory], [{ op: 'read', path: 'extra', offset: 0, length: 10 }]);
    assert.equal(res2.mismatches.length, 1);
    assert.match(res2.mismatches[0]!, /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('as a non-root user: permission errors (EACCES, EPERM) match the kernel', () => {
  assert.equal(process.getuid?.(), 0, 'this test drives the host as uid 1000 through setfsuid and needs root');
  const budgetMs = Number(process.env.FS_MODEL_BUDGET_MS ?? 3000);
  const deadline = Date.now() + budgetMs;
  const user = { uid: 1000, gid: 1000, pid: process.pid };
  chmodSync(base, 0o711); // the user must be able to reach the seed directories
  const seen = new Map<string, number>();
  let ops = 0;
  for (let seed = 1000; seed < 1004 || Date.now() < deadline; seed++) {
    // A root-owned sticky world-writable root (like /tmp) holding root-owned
    // things the user may look at but not change.
    const dir = mkdtempSync(join(base, `user${seed}-`));
    chmodSync(dir, 0o1777);
    mkdirSync(join(dir, 'a'), 0o755);
    writeFileSync(join(dir, 'b'), 'root file');
    chmodSync(join(dir, 'b'), 0o644);
    const mem = new MemoryFs({
      rootMode: 0o1777,
      cache: 'never',
      seed: { a: { dir: {}, mode: 0o755 }, b: { data: 'root file', mode: 0o644 } },
    });
    const memory = fileSystemAdapter(mem, { name: 'memory', ctx: user });
    const host = hostAdapter(dir);
    const list = generateOps(seed, 300, { chown: true, xattrNames: ['user.a', 'user.b'] });
    const res = asHostUser(user.uid, user.gid, () =>
      runDifferential([host, memory], list, { deadline: seed < 1004 ? undefined : deadline, compareFinal: false }),
    );
    // The final trees are compared as root: the user may have locked itself out of parts.
    if (!res.mismatches.length) res.mismatches.push(...compareTrees([host, fileSystemAdapter(mem, { name: 'memory' })]));
    if (res.mismatches.length) {
      const upto = list.slice(0, res.applied);
      assert.fail(
        `seed ${seed} (uid 1000): ${res.mismatches.slice(0, 5).join('\n')}\n` +
          `ops leading there (last 15 of ${upto.length}):\n${upto.slice(-15).map((o: Op) => JSON.stringify(o)).join('\n')}`,
      );
    }
    for (const [k, v] of res.errnos) seen.set(k, (seen.get(k) ?? 0) + v);
    ops += res.applied;
    rmSync(dir, { recursive: true, force: true });
  }
  for (const e of ['EACCES', 'EPERM']) assert.ok(seen.has(e), `no op ended in ${e} in ${ops} ops`);
  console.log(`# uid 1000: ${ops} ops agreed; errnos seen: ${[...seen].map(([k, v]) => `${k}=${v}`).join(' ')}`);
});
