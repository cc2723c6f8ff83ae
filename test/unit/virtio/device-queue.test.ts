// Unit tests of the device-side split ring against an independently written
// driver (test/support/mock-split-queue.ts) over a plain ArrayBuffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceQueue } from '../../../src/virtio/device-queue.ts';
import { Chain } from '../../../src/virtio/chain.ts';
import { GuestMemory } from '../../../src/virtio/memory.ts';
import { QueueError } from '../../../src/virtio/errors.ts';
import { MockSplitQueue } from '../../support/mock-split-queue.ts';

function setup(queueSize = 16, opts: { eventIdx?: boolean; indirect?: boolean } = {}) {
  const drv = new MockSplitQueue({ gpaBase: 0x10_0000, uvaBase: 0x7f12_3400_0000, ramSize: 1 << 20, queueSize });
  const mem = new GuestMemory(drv.regions());
  const q = new DeviceQueue();
  q.setSize(queueSize);
  q.setAddresses(drv.ringAddresses());
  q.setBase(0);
  q.eventIdx = opts.eventIdx ?? false;
  q.indirect = opts.indirect ?? true;
  return { drv, mem, q, chain: new Chain(4) };
}

function popError(q: DeviceQueue, mem: GuestMemory, chain: Chain): QueueError {
  try {
    q.pop(mem, chain);
  } catch (e) {
    assert.ok(e instanceof QueueError, `expected QueueError, got ${e}`);
    return e;
  }
  assert.fail('expected pop to refuse the chain');
}

test('a direct chain: readable parts gathered in order, reply scattered over writable parts', () => {
  const { drv, mem, q, chain } = setup();
  const { head, addrs } = drv.addChain([
    { data: Buffer.from('hello ') },
    { data: Buffer.from('world') },
    { len: 3, writable: true },
    { len: 10, writable: true },
  ]);
  drv.publish(head);
  assert.equal(q.pending(mem), 1);
  assert.equal(q.pop(mem, chain), true);
  assert.equal(chain.head, head);
  assert.equal(chain.readableBytes, 11);
  assert.equal(chain.writableBytes, 13);
  const dst = Buffer.alloc(64);
  assert.equal(chain.gather(mem, dst), 11);
  assert.equal(dst.subarray(0, 11).toString(), 'hello world');
  assert.equal(chain.scatter(mem, Buffer.from('abcdefgh'), 8), 8);
  assert.equal(Buffer.from(drv.read(addrs[2], 3)).toString(), 'abc');
  assert.equal(Buffer.from(drv.read(addrs[3], 5)).toString(), 'defgh');
  q.pushUsed(mem, chain.head, 8);
  assert.deepEqual(drv.takeUsed(), [{ id: head, len: 8 }]);
  assert.equal(q.pop(mem, chain), false);
});

test('scatter stops at the end of a short writable part', () => {
  const { drv, mem, q, chain } = setup();
  const { head, addrs } = drv.addChain([{ data: Buffer.from('x') }, { len: 4, writable: true }]);
  drv.publish(head);
  q.pop(mem, chain);
  assert.equal(chain.scatter(mem, Buffer.from('0123456789'), 10), 4);
  assert.equal(Buffer.from(drv.read(addrs[1], 4)).toString(), '0123');
});

test('an indirect chain is walked through its table', () => {
  const { drv, mem, q, chain } = setup();
  const { head, addrs } = drv.addIndirectChain([{ data: Buffer.from('abc') }, { data: Buffer.from('def') }, { len: 8, writable: true }]);
  drv.publish(head);
  q.pop(mem, chain);
  const dst = Buffer.alloc(6);
  assert.equal(chain.gather(mem, dst), 6);
  assert.equal(dst.toString(), 'abcdef');
  chain.scatter(mem, Buffer.from('12345678'), 8);
  assert.equal(Buffer.from(drv.read(addrs[2], 8)).toString(), '12345678');
  assert.equal(chain.count, 3);
});

test('indirect descriptors refused when not negotiated', () => {
  const { drv, mem, q, chain } = setup(16, { indirect: false });
  drv.publish(drv.addIndirectChain([{ data: Buffer.from('abc') }]).head);
  assert.equal(popError(q, mem, chain).code, 'BAD_INDIRECT');
});

test('many chains in flight, avail ring wraps past 2^16', () => {
  const { drv, mem, q, chain } = setup(8);
  drv.startAt(0xfffe);
  q.setBase(0xfffe);
  for (let round = 0; round < 5; round++) {
    const heads = [0, 1, 2].map((k) => {
      const h = drv.addChain([{ data: Buffer.from([round, k]) }, { len: 2, writable: true }]).head;
      drv.publish(h);
      return h;
    });
    const seen: number[] = [];
    while (q.pop(mem, chain)) {
      const b = Buffer.alloc(2);
      chain.gather(mem, b);
      assert.equal(b[0], round);
      seen.push(chain.head);
      q.pushUsed(mem, chain.head, 2);
    }
    assert.deepEqual(seen, heads);
    assert.deepEqual(drv.takeUsed().map((u) => u.id), heads);
  }
});

test('hostile: a descriptor loop is refused (ttl = queue size)', () => {
  const { drv, mem, q, chain } = setup(8);
  const a = drv.alloc(16);
  drv.writeDesc(0, a, 16, 1, 1);
  drv.writeDesc(1, a, 16, 1, 0); // 1 -> 0 -> 1 ...
  drv.publish(0);
  assert.equal(popError(q, mem, chain).code, 'CHAIN_LOOP');
  // The head was consumed: the device returns it with 0 bytes and carries on.
  q.pushUsed(mem, chain.head, 0);
  assert.deepEqual(drv.takeUsed(), [{ id: 0, len: 0 }]);
  const ok = drv.addChain([{ data: Buffer.from('ok') }]);
  drv.publish(ok.head);
  assert.equal(q.pop(mem, chain), true);
});

test('hostile: a self-loop inside an indirect table is refused', () => {
  const { drv, mem, q, chain } = setup();
  const table = drv.alloc(32);
  const a = drv.alloc(8);
  drv.writeDesc(0, a, 8, 1, 1, table);
  drv.writeDesc(1, a, 8, 1, 1, table);
  drv.writeDesc(0, table, 32, 4, 0);
  drv.publish(0);
  assert.equal(popError(q, mem, chain).code, 'CHAIN_LOOP');
});

test('hostile: next index past the table', () => {
  const { drv, mem, q, chain } = setup(8);
  const a = drv.alloc(8);
  drv.writeDesc(0, a, 8, 1, 200);
  drv.publish(0);
  assert.equal(popError(q, mem, chain).code, 'DESC_OUT_OF_RANGE');
});

test('hostile: avail entry naming a descriptor past the table', () => {
  const { drv, mem, q, chain } = setup(8);
  drv.publish(9);
  assert.equal(popError(q, mem, chain).code, 'INVALID_HEAD');
});

test('hostile: addresses outside memory, across the end, above 2^53, and lengths that wrap', () => {
  const cases: [bigint | number, number][] = [
    [0, 16], // below the region
    [0x10_0000 + (1 << 20) - 8, 16], // straddles the end
    [0x10_0000 + (1 << 20), 1], // just past the end
    [0xffff_ffff_ffff_fff0n, 0x20], // wraps 2^64
    [0x10_0000 + 0x8000, 0xffff_ffff], // huge length
    [0x0020_0000_0000_0000n + 0x10_0000n, 8], // beyond 2^53
  ];
  for (const [addr, len] of cases) {
    const { drv, mem, q, chain } = setup(8);
    drv.writeDesc(0, addr, len, 0, 0);
    drv.publish(0);
    assert.equal(popError(q, mem, chain).code, 'ADDRESS_OUT_OF_RANGE', `addr ${addr} len ${len}`);
  }
});

test('hostile: an indirect table inside an indirect table', () => {
  const { drv, mem, q, chain } = setup();
  const inner = drv.alloc(16);
  drv.writeDesc(0, drv.alloc(8), 8, 0, 0, inner);
  const outer = drv.alloc(16);
  drv.writeDesc(0, inner, 16, 4, 0, outer);
  drv.writeDesc(0, outer, 16, 4, 0);
  drv.publish(0);
  assert.equal(popError(q, mem, chain).code, 'NESTED_INDIRECT');
});

test('hostile: indirect table of a bad length, outside memory, or with NEXT', () => {
  for (const [addr, len, flags, code] of [
    [0x10_0000 + 0x9000, 15, 4, 'BAD_INDIRECT'],
    [0x10_0000 + 0x9000, 0, 4, 'BAD_INDIRECT'],
    [0x10_0000 + 0x9000, 16, 4 | 1, 'BAD_INDIRECT'],
    [0x10, 64, 4, 'ADDRESS_OUT_OF_RANGE'],
  ] as const) {
    const { drv, mem, q, chain } = setup();
    drv.writeDesc(0, addr, len, flags, 1);
    drv.writeDesc(1, drv.alloc(8), 8, 0, 0);
    drv.publish(0);
    assert.equal(popError(q, mem, chain).code, code);
  }
});

test('hostile: a readable descriptor after a writable one', () => {
  const { drv, mem, q, chain } = setup();
  drv.writeDesc(0, drv.alloc(8), 8, 1 | 2, 1);
  drv.writeDesc(1, drv.alloc(8), 8, 0, 0);
  drv.publish(0);
  assert.equal(popError(q, mem, chain).code, 'BAD_DIRECTION');
});

test('hostile: avail idx further ahead than the queue size is fatal', () => {
  const { drv, mem, q, chain } = setup(8);
  drv.setAvailIdx(9);
  const e = popError(q, mem, chain);
  assert.equal(e.code, 'INVALID_AVAIL_IDX');
  assert.equal(e.fatal, true);
});

test('hostile: rings outside memory or misaligned are refused as fatal', () => {
  const { drv, mem, q } = setup();
  const a = drv.ringAddresses();
  q.setAddresses({ ...a, used: a.used + (1 << 20) });
  assert.throws(() => q.pending(mem), (e: unknown) => e instanceof QueueError && e.code === 'INVALID_RING' && e.fatal);
  q.setAddresses({ ...a, used: a.used + 2 });
  assert.throws(() => q.pending(mem), (e: unknown) => e instanceof QueueError && e.code === 'INVALID_RING');
});

test('EVENT_IDX: interrupts only when used idx passes used_event; avail_event published', () => {
  const { drv, mem, q, chain } = setup(8, { eventIdx: true });
  const run = () => {
    const h = drv.addChain([{ data: Buffer.from('r') }, { len: 1, writable: true }]).head;
    drv.publish(h);
    assert.equal(q.pop(mem, chain), true);
    q.pushUsed(mem, chain.head, 1);
  };
  run();
  assert.equal(q.needsNotify(mem), true, 'first decision always notifies');
  drv.setUsedEvent(5); // driver: interrupt me when used idx passes 5
  run(); // used idx 2
  assert.equal(q.needsNotify(mem), false);
  run(); run(); run(); // 3,4,5
  assert.equal(q.needsNotify(mem), false);
  run(); // 6 passes 5
  assert.equal(q.needsNotify(mem), true);
  // enableNotification publishes avail_event = last avail idx and reports nothing new.
  assert.equal(q.enableNotification(mem), false);
  assert.equal(drv.availEvent(), 6);
  // A buffer that arrives after the enable is seen by the re-check.
  drv.publish(drv.addChain([{ data: Buffer.from('late') }]).head);
  assert.equal(q.enableNotification(mem), true);
});

test('without EVENT_IDX: NO_INTERRUPT honoured, NO_NOTIFY toggled', () => {
  const { drv, mem, q, chain } = setup(8);
  drv.publish(drv.addChain([{ data: Buffer.from('r') }]).head);
  q.disableNotification(mem);
  assert.equal(drv.usedFlags(), 1);
  q.pop(mem, chain);
  q.pushUsed(mem, chain.head, 0);
  assert.equal(q.needsNotify(mem), true);
  drv.setAvailFlags(1);
  assert.equal(q.needsNotify(mem), false);
  assert.equal(q.enableNotification(mem), false);
  assert.equal(drv.usedFlags(), 0);
});

test('GuestMemory translates guest-physical and frontend-virtual addresses per region', () => {
  const ram = new ArrayBuffer(0x4000);
  const mem = new GuestMemory([
    { guestPhysAddr: 0x0, userAddr: 0x7000_0000, buffer: ram, bufferOffset: 0, size: 0x2000 },
    { guestPhysAddr: 0x1_0000_0000, userAddr: 0x9000_0000, buffer: ram, bufferOffset: 0x2000, size: 0x2000 },
  ]);
  assert.equal(mem.findGpa(0x1ff0, 0x10), 0);
  assert.equal(mem.findGpa(0x1ff0, 0x11), -1, 'crossing a region end');
  assert.equal(mem.findGpa(0x1_0000_0010, 8), 1);
  assert.equal(mem.findGpa(0x2000, 1), -1, 'the hole between regions');
  assert.equal(mem.findUva(0x9000_1000, 0x1000), 1);
  assert.equal(mem.findUva(0x9000_1000, 0x1001), -1);
  assert.throws(() => new GuestMemory([
    { guestPhysAddr: 0, userAddr: 0, buffer: ram, size: 0x2000 },
    { guestPhysAddr: 0x1000, userAddr: 0x10000, buffer: ram, bufferOffset: 0x2000, size: 0x2000 },
  ]), RangeError);
});

test('a buffer running from one region into the next contiguous one is followed across; a gap refuses it', () => {
  // One driver RAM presented to the device as two regions cut at 0x10_0000 + 512 KiB.
  const drv = new MockSplitQueue({ gpaBase: 0x10_0000, uvaBase: 0x7f12_3400_0000, ramSize: 1 << 20, queueSize: 8 });
  const cut = 1 << 19;
  const mem = new GuestMemory([
    { guestPhysAddr: 0x10_0000, userAddr: 0x7f12_3400_0000, buffer: drv.ram, size: cut },
    { guestPhysAddr: 0x10_0000 + cut, userAddr: 0x7f12_3400_0000 + cut, buffer: drv.ram, bufferOffset: cut, size: cut },
  ]);
  const q = new DeviceQueue();
  q.setSize(8);
  q.setAddresses(drv.ringAddresses());
  q.setBase(0);
  const chain = new Chain(1);
  const start = 0x10_0000 + cut - 5;
  drv.bytes.set(Buffer.from('0123456789'), cut - 5);
  drv.writeDesc(0, start, 10, 1, 1);
  drv.writeDesc(1, start, 10, 2, 0);
  drv.publish(0);
  assert.equal(q.pop(mem, chain), true);
  assert.equal(chain.count, 4, 'two pieces per buffer');
  const dst = Buffer.alloc(10);
  assert.equal(chain.gather(mem, dst), 10);
  assert.equal(dst.toString(), '0123456789');
  assert.equal(chain.scatter(mem, Buffer.from('abcdefghij'), 10), 10);
  assert.equal(Buffer.from(drv.read(start, 10)).toString(), 'abcdefghij');
  // With a hole after the first region, the same buffer is refused.
  const holed = new GuestMemory([mem.regions[0]!].map((r) => ({ guestPhysAddr: r.gpa, userAddr: r.uva, buffer: drv.ram, size: cut })));
  const q2 = new DeviceQueue();
  q2.setSize(8);
  q2.setAddresses(drv.ringAddresses());
  q2.setBase(0);
  assert.throws(() => q2.pop(holed, chain), (e: unknown) => e instanceof QueueError && e.code === 'ADDRESS_OUT_OF_RANGE');
});
