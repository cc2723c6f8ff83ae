// Random descriptor tables and avail rings (seeded, so failures replay):
// popping must either yield a chain whose every segment lies inside guest
// memory, in readable-then-writable order, or throw QueueError. Nothing else
// may escape, and no walk may take longer than the table allows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceQueue } from '../../../src/virtio/device-queue.ts';
import { Chain } from '../../../src/virtio/chain.ts';
import { GuestMemory } from '../../../src/virtio/memory.ts';
import { QueueError } from '../../../src/virtio/errors.ts';
import { MockSplitQueue } from '../../support/mock-split-queue.ts';

/** xorshift32: small, seeded, good enough to spread values. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

test('random rings: only QueueError escapes, accepted chains stay inside memory', () => {
  const seed = Number(process.env.FUZZ_SEED ?? 0x5eed);
  const next = rng(seed);
  const QS = 8;
  const RAM = 1 << 16;
  const GPA = 0x10_0000;
  let accepted = 0;
  let refused = 0;
  const t0 = Date.now();
  for (let iter = 0; iter < 3000; iter++) {
    const drv = new MockSplitQueue({ gpaBase: GPA, uvaBase: 0x7f00_0000_0000, ramSize: RAM, queueSize: QS });
    const mem = new GuestMemory(drv.regions());
    const q = new DeviceQueue();
    q.setSize(QS);
    q.setAddresses(drv.ringAddresses());
    q.setBase(0);
    q.indirect = (next() & 1) === 1;
    // An indirect table somewhere in RAM, filled at random too.
    const table = GPA + 0x8000;
    const pick = (): bigint => {
      switch (next() % 6) {
        case 0: return BigInt(GPA + (next() % RAM));
        case 1: return BigInt(table);
        case 2: return BigInt(next()) * 0x1_0000_0000n + BigInt(next());
        case 3: return BigInt(GPA + RAM - (next() % 64));
        default: return BigInt(GPA + 0x9000 + (next() % 0x1000));
      }
    };
    const len = () => (next() % 4 === 0 ? next() : next() % 0x2000);
    for (let i = 0; i < QS; i++) drv.writeDesc(i, pick(), len(), next() & 7, next() % (QS + 2));
    for (let i = 0; i < 8; i++) drv.writeDesc(i, pick(), len(), next() & 7, next() % 10, table);
    const chains = 1 + (next() % QS);
    for (let c = 0; c < chains; c++) drv.publish(next() % (QS + 1));
    const chain = new Chain(2);
    for (let c = 0; c < chains; c++) {
      try {
        if (!q.pop(mem, chain)) break;
        accepted++;
        let seenWritable = false;
        for (let s = 0; s < chain.count; s++) {
          const r = mem.regions[chain.segRegion[s]!]!;
          assert.ok(chain.segOffset[s]! + chain.segLen[s]! <= r.size, 'segment inside its region');
          const w = s >= chain.readable;
          assert.ok(!(seenWritable && !w), 'readable after writable');
          seenWritable ||= w;
        }
        // Gather/scatter over an accepted chain must not throw either.
        chain.gather(mem, Buffer.alloc(chain.readableBytes));
        chain.scatter(mem, Buffer.alloc(chain.writableBytes), chain.writableBytes);
        q.pushUsed(mem, chain.head, 0);
      } catch (err) {
        if (!(err instanceof QueueError)) throw new Error(`seed ${seed} iteration ${iter}: ${err}`);
        refused++;
      }
    }
  }
  assert.ok(accepted > 100 && refused > 100, `both outcomes exercised (accepted ${accepted}, refused ${refused})`);
  assert.ok(Date.now() - t0 < 20_000, 'walks are bounded');
});
