// The DAX window manager's bookkeeping (OSv's design): a LIFO stack of
// {nodeid, nchunks, fstart, mstart}; contiguous growth of the top mapping of
// the same file; eviction from the top when full; never a chunk past the
// window. And the guest-memory arena the driver carves request buffers from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkStack } from '../../../src/driver/dax/dax-manager.ts';
import { ArenaAllocator } from '../../../src/driver/virtiofs-driver.ts';

test('a new mapping goes on top; a contiguous one of the same file extends the top', () => {
  const s = new ChunkStack(8);
  const a = s.plan(10, 0, 2)!;
  assert.deepEqual([a.mstart, a.extend], [0, false]);
  const b = s.plan(10, 2, 1)!;
  assert.deepEqual([b.mstart, b.extend], [2, true]);
  assert.deepEqual(s.stack, [{ nodeid: 10, nchunks: 3, fstart: 0, mstart: 0, writable: false }]);
  const c = s.plan(11, 5, 2)!;
  assert.deepEqual([c.mstart, c.extend], [3, false]);
  assert.equal(s.find(10, 2), 2);
  assert.equal(s.find(11, 6), 4);
  assert.equal(s.find(11, 4), -1);
  assert.equal(s.find(12, 0), -1);
});

test('writable mappings: a writer finds only writable chunks, a reader either; runs of different kinds never merge', () => {
  const s = new ChunkStack(8);
  s.plan(10, 0, 2); // read-only [0,2)
  assert.equal(s.find(10, 1), 1);
  assert.equal(s.find(10, 1, true), -1, 'a read-only chunk is no place for a store');
  const w = s.plan(10, 2, 1, true)!;
  assert.equal(w.extend, false, 'a writable run does not extend a read-only top');
  const w2 = s.plan(10, 0, 2, true)!;
  assert.equal(w2.mstart, 3, 'file chunks 0-1 mapped again, writable, on top');
  assert.equal(s.find(10, 0, true), 3);
  assert.equal(s.find(10, 0), 3, 'the newest mapping serves reads too');
  assert.equal(s.find(10, 2, true), 2);
});

test('window full: chunks come back from the top (LIFO), partial tops shrink, nothing maps past the end', () => {
  const s = new ChunkStack(6);
  s.plan(1, 0, 2); // [0,2)
  s.plan(2, 0, 2); // [2,4)
  s.plan(3, 0, 2); // [4,6)
  const p = s.plan(4, 0, 3)!;
  assert.deepEqual(p.evicted.map((m) => m.nodeid), [3, 2], 'the newest mappings go first');
  assert.equal(p.evicted[1]!.nchunks, 1, 'only what is needed is taken from a partially evicted top');
  assert.equal(p.mstart, 3);
  assert.equal(s.find(2, 0), 2, 'the untouched part of the shrunk mapping still hits');
  assert.equal(s.find(2, 1), -1);
  assert.equal(s.find(3, 0), -1);
  for (const m of s.stack) assert.ok(m.mstart + m.nchunks <= 6);
  assert.equal(s.plan(5, 0, 7), null, 'a request bigger than the window is refused (FUSE_READ fallback)');
});

test('undo rolls a failed plan back; dropNode hides a file without moving others', () => {
  const s = new ChunkStack(4);
  s.plan(1, 0, 1);
  const p = s.plan(1, 1, 1)!;
  assert.equal(p.extend, true);
  s.undo(p);
  assert.equal(s.find(1, 1), -1);
  assert.equal(s.find(1, 0), 0);
  const q = s.plan(2, 0, 2)!;
  s.undo(q);
  assert.equal(s.usedChunks, 1);
  s.plan(3, 0, 1);
  s.dropNode(1);
  assert.equal(s.find(1, 0), -1);
  assert.equal(s.find(3, 0), 1);
});

test('random workloads keep the stack contiguous and every hit pointing at its own file chunk', () => {
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
  const s = new ChunkStack(16);
  // The oracle: what each window chunk holds now.
  const holds: ({ node: number; f: number } | null)[] = new Array(16).fill(null);
  for (let i = 0; i < 5000; i++) {
    const node = 1 + rnd(5);
    const f = rnd(20);
    const n = 1 + rnd(4);
    const p = s.plan(node, f, n)!;
    for (let k = 0; k < n; k++) holds[p.mstart + k] = { node, f: f + k };
    let at = 0;
    for (const m of s.stack) {
      assert.equal(m.mstart, at, 'mappings are contiguous from the bottom');
      at += m.nchunks;
    }
    assert.ok(at <= 16);
    for (let node2 = 1; node2 <= 5; node2++) {
      for (let f2 = 0; f2 < 24; f2++) {
        const w = s.find(node2, f2);
        if (w >= 0) assert.deepEqual(holds[w], { node: node2, f: f2 });
      }
    }
  }
});

test('arena: first fit, coalescing, no double free', () => {
  const a = new ArenaAllocator(0x1000, 0x1000 + 1024);
  const x = a.alloc(100);
  const y = a.alloc(200);
  const z = a.alloc(300);
  assert.deepEqual([x, y - x, z - y], [0x1000, 128, 256]);
  assert.equal(a.alloc(1024), -1);
  a.free(y, 200);
  assert.equal(a.alloc(256), y, 'a freed hole is reused');
  a.free(y, 256);
  a.free(x, 100);
  a.free(z, 300);
  assert.equal(a.largestFree, 1024, 'everything coalesced back');
  assert.throws(() => a.free(x, 100), /double free/);
});

test('dead mappings on top (forgotten files) are taken back before live ones; clear() empties the window', () => {
  const s = new ChunkStack(4);
  s.plan(1, 0, 2);
  s.plan(2, 0, 2);
  s.dropNode(2);
  const p = s.plan(3, 0, 2)!;
  assert.equal(p.mstart, 2, 'the dead top was reused');
  assert.equal(s.find(1, 1), 1, 'the live mapping below survived');
  s.clear();
  assert.equal(s.usedChunks, 0);
  assert.equal(s.find(1, 0), -1);
});
