// Differential test: seeded random operation sequences (test/support/fs-model.ts)
// run through the driver (our daemon, and QEMU's C virtiofsd) and directly on
// a host directory; every result (value or errno) and the final trees
// (kinds, permissions, sizes, contents, hard-link groups, symlink targets)
// must be identical.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { constants as fsc, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { connectVirtioFs } from '../../src/driver/session.ts';
import type { VirtioFs } from '../../src/driver/vfs.ts';
import { applyOp, errnoCode, generateOps, hostAdapter, snapshot, type Op, type Outcome } from '../support/fs-model.ts';
import { PEERS } from './driver-peers.ts';

const root = mkdtempSync(join(tmpdir(), 'drv-diff-'));
const kills: (() => void)[] = [];
after(() => {
  for (const k of kills) k();
  rmSync(root, { recursive: true, force: true });
});

const SUPPORTED = new Set(['mkdir', 'rmdir', 'unlink', 'write', 'read', 'truncate', 'rename', 'link', 'symlink', 'readlink', 'chmod', 'lstat', 'readdir']);

/** Same bytes as fs-model's payload(): a fill byte with a position stamp every 4 KiB. */
function payload(length: number, fill: number): Buffer {
  const buf = Buffer.alloc(length, fill);
  for (let i = 0; i + 4 <= length; i += 4096) buf.writeUInt32LE((i ^ (fill * 0x01010101)) >>> 0, i);
  return buf;
}
const digest = (b: Buffer) => `${b.length}:${createHash('sha1').update(b).digest('hex').slice(0, 16)}`;
const KIND: Record<number, string> = { [fsc.S_IFREG]: 'file', [fsc.S_IFDIR]: 'dir', [fsc.S_IFLNK]: 'symlink', [fsc.S_IFIFO]: 'fifo' };
const fail = (code: string) => { throw Object.assign(new Error(code), { code }); };

/** fs-model's adapter semantics, through the driver's promise API. */
async function applyDriver(fs: VirtioFs, op: Op): Promise<Outcome> {
  const P = (p: string) => `/${p}`;
  const noFollow = async (p: string, exclusiveCreate = false) => {
    try {
      const st = await fs.lstat(P(p));
      if (st.isSymbolicLink()) fail(exclusiveCreate ? 'EEXIST' : 'ELOOP');
      return st;
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return null;
      throw err;
    }
  };
  try {
    switch (op.op) {
      case 'mkdir': await fs.mkdir(P(op.path), { mode: op.mode }); return { ok: null };
      case 'rmdir': await fs.rmdir(P(op.path)); return { ok: null };
      case 'unlink': await fs.unlink(P(op.path)); return { ok: null };
      case 'write': {
        await noFollow(op.path, op.opts.exclusive);
        let flags = fsc.O_WRONLY | fsc.O_CREAT;
        if (op.opts.append) flags |= fsc.O_APPEND;
        if (op.opts.truncate) flags |= fsc.O_TRUNC;
        if (op.opts.exclusive) flags |= fsc.O_EXCL;
        const h = await fs.open(P(op.path), flags, 0o644);
        try {
          const r = await h.write(payload(op.length, op.fill), 0, op.length, op.opts.append ? null : op.offset);
          return { ok: r.bytesWritten };
        } finally {
          await h.close();
        }
      }
      case 'read': {
        const st = await noFollow(op.path);
        if (!st) fail('ENOENT');
        const h = await fs.open(P(op.path), 'r');
        try {
          if (st!.isDirectory()) fail('EISDIR');
          const b = Buffer.alloc(op.length);
          const r = await h.read(b, 0, op.length, op.offset);
          return { ok: digest(b.subarray(0, r.bytesRead)) };
        } finally {
          await h.close();
        }
      }
      case 'truncate': {
        const st = await noFollow(op.path);
        if (!st) fail('ENOENT');
        if (st!.isDirectory()) fail('EISDIR');
        await fs.truncate(P(op.path), op.size);
        return { ok: null };
      }
      case 'rename': await fs.rename(P(op.from), P(op.to)); return { ok: null };
      case 'link': await fs.link(P(op.existing), P(op.path)); return { ok: null };
      case 'symlink': await fs.symlink(op.target, P(op.path)); return { ok: null };
      case 'readlink': return { ok: await fs.readlink(P(op.path)) };
      case 'chmod': await noFollow(op.path); await fs.chmod(P(op.path), op.mode); return { ok: null };
      case 'lstat': {
        const st = await fs.lstat(P(op.path));
        const kind = KIND[st.mode & fsc.S_IFMT] ?? 'other';
        return { ok: { kind, perm: st.mode & 0o7777, size: kind === 'file' || kind === 'symlink' ? st.size : 0, nlink: st.nlink, uid: st.uid, gid: st.gid } };
      }
      case 'readdir': return { ok: await fs.readdir(P(op.path)) };
      default: throw new Error(`unsupported ${op.op}`);
    }
  } catch (err) {
    return { err: errnoCode(err) };
  }
}

for (const peer of PEERS) {
  describe(`differential: driver on ${peer.name} vs the host`, { timeout: 90_000 }, () => {
    // With a DAX window, reads (after writes and truncations) come from the window.
    for (const seed of peer.daxWindowBytes > 0 ? [13, 14] : [11, 12]) {
      test(`seed ${seed}: 250 random ops give the same results and trees`, async () => {
        const base = join(root, `${peer.name.replace(/\W+/g, '-')}-${seed}`);
        const viaDriver = join(base, 'driver');
        const oracle = join(base, 'oracle');
        mkdirSync(viaDriver, { recursive: true });
        mkdirSync(oracle);
        const d = await peer.start(join(base, 's.sock'), viaDriver);
        kills.push(d.kill);
        const s = await connectVirtioFs({ socketPath: join(base, 's.sock'), requestTimeoutMs: 10_000, umask: 0o022, daxWindowBytes: peer.daxWindowBytes });
        const host = hostAdapter(oracle, { umask: 0o022 });
        const ops = generateOps(seed, 1200, { chown: false, xattrs: false, fallocate: false, fifos: false, seek: false })
          .filter((o) => SUPPORTED.has(o.op) && !(o.op === 'rename' && o.flags !== 0))
          .slice(0, 250);
        const mismatches: string[] = [];
        const errnos = new Map<string, number>();
        try {
          for (const [i, op] of ops.entries()) {
            const a = await applyDriver(s.fs, op);
            const b = applyOp(host, op);
            if ('err' in b) errnos.set(b.err, (errnos.get(b.err) ?? 0) + 1);
            if (JSON.stringify(a) !== JSON.stringify(b)) mismatches.push(`#${i} ${JSON.stringify(op)}: driver ${JSON.stringify(a)} host ${JSON.stringify(b)}`);
          }
          // Every regular file of the final tree, read back through the driver (through the window with DAX).
          for (const [path, e] of snapshot(host, { xattrs: false })) {
            if (e.stat.kind !== 'file') continue;
            const got = digest((await s.fs.readFile(`/${path}`)) as Buffer);
            if (got !== e.content) mismatches.push(`final read of ${path}: driver ${got} host ${e.content}`);
          }
        } finally {
          await s.close();
          d.kill();
        }
        assert.deepEqual(mismatches, []);
        if (peer.daxWindowBytes > 0) {
          const st = s.dax!.stats;
          assert.ok(st.setupmappings > 0 && st.hits + st.misses - st.fallbacks > 0, `DAX served reads: ${JSON.stringify(st)}`);
          assert.ok(st.windowWrites > 0, `writes inside files went through writable mappings: ${JSON.stringify(st)}`);
        }
        assert.ok(errnos.size >= 3, `the run reached error paths: ${[...errnos.keys()]}`);
        const sa = snapshot(hostAdapter(viaDriver), { xattrs: false });
        const sb = snapshot(hostAdapter(oracle), { xattrs: false });
        assert.deepEqual([...sa.entries()].sort(), [...sb.entries()].sort());
        assert.ok(sa.size > 5, `a non-trivial tree (${sa.size} entries)`);
      });
    }
  });
}
