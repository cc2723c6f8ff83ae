// Chain.writableView (the zero-copy READ path of the vhost-user device): a
// view only when the asked range of the writable part lies in one buffer,
// aliasing exactly those guest bytes; null otherwise. Against the
// independently written test driver (test/support/mock-split-queue.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceQueue } from '../../../src/virtio/device-queue.ts';
import { Chain } from '../../../src/virtio/chain.ts';
import { GuestMemory } from '../../../src/virtio/memory.ts';
import { MockSplitQueue } from '../../support/mock-split-queue.ts';

function popOne(parts: { data?: Buffer; len?: number; writable?: boolean }[]) {
  const drv = new MockSplitQueue({ gpaBase: 0x10_0000, uvaBase: 0x7f12_3400_0000, ramSize: 1 << 20, queueSize: 16 });
  const mem = new GuestMemory(drv.regions());
  const q = new DeviceQueue();
  q.setSize(16);
  q.setAddresses(drv.ringAddresses());
  q.setBase(0);
  const { head, addrs } = drv.addChain(parts);
  drv.publish(head);
  const chain = new Chain(4);
  assert.equal(q.pop(mem, chain), true);
  return { drv, mem, chain, addrs };
}

test('one writable buffer: a view of [16, 16+n) writes straight into guest memory', () => {
  const { drv, mem, chain, addrs } = popOne([{ data: Buffer.alloc(40, 1) }, { len: 16 + 4096, writable: true }]);
  const v = chain.writableView(mem, 16, 4096);
  assert.ok(v);
  assert.equal(v.length, 4096);
  v.fill(0xab);
  assert.deepEqual(Buffer.from(drv.read(addrs[1] + 16, 4096)), Buffer.alloc(4096, 0xab));
  assert.deepEqual(Buffer.from(drv.read(addrs[1], 16)), Buffer.alloc(16), 'the header bytes are untouched');
  assert.equal(chain.writableView(mem, 16, 4097), null, 'one byte past the writable part');
});

test('header and data in separate buffers (the Linux guest layout): the data buffer is viewed', () => {
  const { drv, mem, chain, addrs } = popOne([{ data: Buffer.alloc(80, 1) }, { len: 16, writable: true }, { len: 4096, writable: true }]);
  const v = chain.writableView(mem, 16, 4096);
  assert.ok(v);
  v.fill(0x5a);
  assert.deepEqual(Buffer.from(drv.read(addrs[2], 4096)), Buffer.alloc(4096, 0x5a));
});

test('a range that spans two buffers, or a chain with no writable part, gives null', () => {
  // 16 + 2044 bytes end 4 bytes before the next 8-aligned allocation: not adjacent, two segments.
  const split = popOne([{ data: Buffer.alloc(40, 1) }, { len: 16 + 2044, writable: true }, { len: 2052, writable: true }]);
  assert.equal(split.chain.count - split.chain.readable, 2);
  assert.equal(split.chain.writableView(split.mem, 16, 4096), null);
  assert.ok(split.chain.writableView(split.mem, 16, 2044), 'the part inside the first buffer is fine');
  const none = popOne([{ data: Buffer.alloc(40, 1) }]);
  assert.equal(none.chain.writableView(none.mem, 16, 1), null);
});

test('adjacent buffers of one direction merge into one segment; a writable one never merges into a readable one', () => {
  const drv = new MockSplitQueue({ gpaBase: 0x10_0000, uvaBase: 0x7f12_3400_0000, ramSize: 1 << 20, queueSize: 16 });
  const mem = new GuestMemory(drv.regions());
  const q = new DeviceQueue();
  q.setSize(16);
  q.setAddresses(drv.ringAddresses());
  q.setBase(0);
  // Raw descriptors: readable 0x1000+40, readable 0x1028+40 (adjacent), writable 0x1050+16 (adjacent to
  // the readable part), writable 0x1060+4096 (adjacent), writable 0x3000+8 (not adjacent).
  const base = drv.alloc(0x4000);
  const descs: [number, number, number][] = [[base, 40, 0], [base + 40, 40, 0], [base + 80, 16, 2], [base + 96, 4096, 2], [base + 0x3000, 8, 2]];
  descs.forEach(([a, l, w], i) => drv.writeDesc(i, a, l, w | (i < descs.length - 1 ? 1 : 0), i + 1));
  drv.publish(0);
  const chain = new Chain(2);
  assert.equal(q.pop(mem, chain), true);
  assert.equal(chain.readable, 1, 'the two readable buffers are one segment');
  assert.equal(chain.count, 3, 'readable | header+data | the distant one');
  assert.equal(chain.segLen[0], 80);
  assert.equal(chain.segLen[1], 16 + 4096);
  assert.equal(chain.readableBytes, 80);
  assert.equal(chain.writableBytes, 16 + 4096 + 8);
  // The 4 KiB after the header is one view now; gather and scatter see the same bytes as before.
  assert.ok(chain.writableView(mem, 16, 4096));
  const src = Buffer.alloc(16 + 4096 + 8, 0x33);
  assert.equal(chain.scatter(mem, src, src.length), src.length);
  assert.deepEqual(Buffer.from(drv.read(base + 0x3000, 8)), Buffer.alloc(8, 0x33));
  assert.deepEqual(Buffer.from(drv.read(base + 40, 40)), Buffer.alloc(40), 'the readable part was not written');
});
