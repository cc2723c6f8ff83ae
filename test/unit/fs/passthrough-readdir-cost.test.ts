// PassthroughFs readdir cost guard: listing a big directory in many small
// replies (as the kernel asks, 4 KiB to 32 KiB at a time), and re-asking from
// an offset a little back (as it does when a user buffer fills mid-reply),
// must read the host directory once: never a rescan from the start per reply
// (O(n^2) getdents64). Counts the backend's own getdents64 calls.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as nfs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassthroughFs } from '../../../src/fs/passthrough/passthrough-fs.ts';
import type { DirEntry, RequestContext } from '../../../src/fuse/filesystem.ts';

const ROOT: RequestContext = { uid: 0, gid: 0, pid: 1 };
// Enough for several 32 KiB getdents64 batches (ext4: ~40 bytes a record) while
// creating the files stays at a few seconds on a loaded disk.
const COUNT = 3000;

describe('passthrough readdir reads the host directory once', () => {
  const dir = nfs.mkdtempSync(join(tmpdir(), 'vfs-rdcost-'));
  const fs = new PassthroughFs(dir, { readonly: false, cache: 'auto', xattr: false, writeback: false });
  after(() => {
    fs.destroy();
    nfs.rmSync(dir, { recursive: true, force: true });
  });
  for (let i = 0; i < COUNT; i++) nfs.closeSync(nfs.openSync(join(dir, `file-${i.toString(36).padStart(4, '0')}.dat`), 'wx'));

  /** Lists the root with `perReply` entries a reply, each reply resuming `back` entries before the last one given. */
  function list(perReply: number, back: number, plus: boolean): { names: Set<string>; calls: number; replies: number } {
    const before = fs.stats.getdentsCalls;
    const { fh } = fs.opendir(ROOT, 1, 0);
    const names = new Set<string>();
    let off = 0;
    let replies = 0;
    for (;;) {
      const got: DirEntry[] = [];
      const take = (e: DirEntry) => got.length < perReply && (got.push(e), true);
      if (plus) {
        fs.readdirplus(ROOT, 1, fh, off, {
          add: (e, p) => {
            if (!take(e)) return false;
            if (p.nodeid !== 0) fs.forget(p.nodeid, 1);
            return true;
          },
        });
      } else {
        fs.readdir(ROOT, 1, fh, off, { add: take });
      }
      replies++;
      if (got.length === 0) break;
      for (const e of got) names.add(e.name.toString());
      const last = got.length - 1;
      // Going back only makes sense when the reply moved forward further than that.
      off = got[last > back ? last - back : last].off;
    }
    fs.releasedir(ROOT, 1, fh);
    return { names, calls: fs.stats.getdentsCalls - before, replies };
  }

  test('one reply per call: the baseline count of getdents64 calls', () => {
    const { names, calls } = list(Infinity, 0, false);
    assert.equal(names.size, COUNT + 2);
    assert.ok(calls >= 2, `a ${COUNT}-entry directory takes several batches (got ${calls})`);
  });

  test('the addRaw fast path (the server sink) gives the same entries, cookies and batches as add()', () => {
    const viaAdd: string[] = [];
    const viaRaw: string[] = [];
    const collect = (raw: boolean, out: string[]) => {
      const { fh } = fs.opendir(ROOT, 1, 0);
      let off = 0;
      for (;;) {
        let n = 0;
        const before = out.length;
        const sink = raw
          ? {
              add: () => assert.fail('add() called although addRaw() exists'),
              addRaw: (ino: number, o: number, type: number, src: Uint8Array, start: number, end: number) => {
                if (n === 37) return false;
                n++;
                out.push(`${ino}/${o}/${type}/${Buffer.from(src.subarray(start, end)).toString()}`);
                off = o;
                return true;
              },
            }
          : {
              add: (e: DirEntry) => {
                if (n === 37) return false;
                n++;
                out.push(`${e.ino}/${e.off}/${e.type}/${e.name.toString()}`);
                off = e.off;
                return true;
              },
            };
        fs.readdir(ROOT, 1, fh, off, sink);
        if (out.length === before) break;
      }
      fs.releasedir(ROOT, 1, fh);
    };
    collect(false, viaAdd);
    collect(true, viaRaw);
    assert.equal(viaAdd.length, COUNT + 2);
    assert.deepEqual(viaRaw, viaAdd);
  });

  for (const plus of [false, true]) {
    const op = plus ? 'readdirplus' : 'readdir';
    test(`${op} in 50-entry replies: no more getdents64 calls than one pass`, () => {
      const base = list(Infinity, 0, false).calls;
      const { names, calls, replies } = list(50, 0, plus);
      assert.equal(names.size, COUNT + 2, 'every entry once');
      assert.ok(replies > COUNT / 50, `${replies} replies`);
      assert.ok(calls <= base + 1, `${calls} getdents64 calls for ${replies} replies; one pass takes ${base}`);
    });

    test(`${op} re-asking 20 entries back after each reply: still one pass`, () => {
      const base = list(Infinity, 0, false).calls;
      const { names, calls } = list(50, 20, plus);
      assert.equal(names.size, COUNT + 2, 'every entry');
      // Stepping back across a batch boundary resumes at the host cookie: at
      // most one extra getdents64 per batch boundary.
      assert.ok(calls <= 2 * base + 1, `${calls} getdents64 calls; one pass takes ${base}`);
    });
  }
});
