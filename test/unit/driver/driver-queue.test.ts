// The driver side of the split ring against the project's DEVICE side
// (src/virtio/device-queue.ts, written independently from the spec) in one
// shared memory: chains go round trip, indices wrap, EVENT_IDX suppresses
// kicks and interrupts exactly as the spec's vring_need_event says, and a
// device that returns junk is caught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../../../src/virtio/memory.ts';
import { DeviceQueue } from '../../../src/virtio/device-queue.ts';
import { Chain } from '../../../src/virtio/chain.ts';
import { DriverQueue, DriverQueueError, layoutRing } from '../../../src/virtio/driver-queue.ts';

const GPA = 0x10_0000;
const UVA = 0x7f00_0000_0000;

function setup(size: number, eventIdx: boolean) {
  const buf = new ArrayBuffer(1 << 20);
  const mem = new GuestMemory([{ guestPhysAddr: GPA, userAddr: UVA, buffer: buf, size: buf.byteLength }]);
  const layout = layoutRing(GPA, size);
  const drv = new DriverQueue(size, layout, eventIdx);
  drv.reset(mem);
  const dev = new DeviceQueue();
  dev.setSize(size);
  dev.setAddresses({ desc: UVA + (layout.desc - GPA), avail: UVA + (layout.avail - GPA), used: UVA + (layout.used - GPA) });
  dev.eventIdx = eventIdx;
  const data = GPA + layout.bytes;
  return { mem, drv, dev, data };
}

test('chains round-trip through the device queue, many in flight, across index wrap', () => {
  const { mem, drv, dev, data } = setup(8, false);
  const chain = new Chain();
  let seen = 0;
  for (let round = 0; round < 30_000; round++) {
    const n = 1 + (round % 4); // two descriptors per chain: up to 4 chains in flight on 8
    const heads: number[] = [];
    for (let i = 0; i < n; i++) {
      const h = drv.add(mem, [{ addr: data + 64 * i, len: 16, write: false }, { addr: data + 4096 + 64 * i, len: 32, write: true }]);
      assert.ok(h >= 0);
      heads.push(h);
    }
    assert.equal(drv.add(mem, new Array(8 - 2 * n + 1).fill(0).map(() => ({ addr: data, len: 1, write: false }))), -1, 'a chain longer than the free descriptors is refused');
    drv.publish(mem);
    for (let i = 0; i < n; i++) {
      assert.ok(dev.pop(mem, chain));
      assert.equal(chain.head, heads[i]);
      assert.equal(chain.readableBytes, 16);
      assert.equal(chain.writableBytes, 32);
      dev.pushUsed(mem, chain.head, i);
    }
    const got: number[] = [];
    drv.reap(mem, (e) => got.push(e.head));
    assert.deepEqual(got, heads);
    seen += n;
    assert.equal(drv.freeCount, 8);
  }
  assert.ok(seen > 65536, 'indices wrapped past 2^16');
});

test('EVENT_IDX: kicks only when the device asked, interrupts only when the driver asked', () => {
  const { mem, drv, dev, data } = setup(16, true);
  const chain = new Chain();
  const add = () => drv.add(mem, [{ addr: data, len: 8, write: false }, { addr: data + 64, len: 8, write: true }]);
  // Device armed avail_event = 0 (kick on the first buffer).
  dev.enableNotification(mem);
  add();
  assert.equal(drv.publish(mem), true, 'first buffer kicks');
  add();
  assert.equal(drv.publish(mem), false, 'device has not re-armed: no kick');
  assert.equal(drv.publish(mem), false, 'nothing new: no kick');
  while (dev.pop(mem, chain)) dev.pushUsed(mem, chain.head, 0);
  dev.enableNotification(mem);
  add();
  assert.equal(drv.publish(mem), true, 're-armed: kick');
  // Interrupts: driver arms used_event at its last seen used idx.
  assert.equal(drv.armInterrupt(mem), true, 'used entries already waiting');
  drv.reap(mem, () => {});
  assert.equal(drv.armInterrupt(mem), false);
  assert.ok(dev.pop(mem, chain));
  dev.pushUsed(mem, chain.head, 0);
  assert.equal(dev.needsNotify(mem), true, 'driver asked for the next used entry');
  add();
  drv.publish(mem);
  assert.ok(dev.pop(mem, chain));
  dev.pushUsed(mem, chain.head, 0);
  assert.equal(dev.needsNotify(mem), false, 'driver has not re-armed: no interrupt');
});

test('a device returning a head that is not outstanding is a fatal DriverQueueError', () => {
  const { mem, drv, dev, data } = setup(4, false);
  const chain = new Chain();
  drv.add(mem, [{ addr: data, len: 8, write: false }]);
  drv.publish(mem);
  assert.ok(dev.pop(mem, chain));
  dev.pushUsed(mem, chain.head, 0);
  dev.pushUsed(mem, chain.head, 0); // the same head twice
  const err = (() => { try { drv.reap(mem, () => {}); } catch (e) { return e; } return null; })();
  assert.ok(err instanceof DriverQueueError && err.fatal && err.code === 'BAD_USED_ID', String(err));
});

test('chains are checked: outside memory, readable after writable', () => {
  const { mem, drv, data } = setup(4, false);
  assert.throws(() => drv.add(mem, [{ addr: 0x10, len: 8, write: false }]), /outside guest memory/);
  assert.throws(() => drv.add(mem, [{ addr: data, len: 8, write: true }, { addr: data, len: 8, write: false }]), /readable buffer after a writable/);
  assert.equal(drv.freeCount, 4, 'a refused chain takes no descriptors');
});
