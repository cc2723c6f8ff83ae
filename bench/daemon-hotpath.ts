// bench: the pure-JavaScript cost of one request on our device's data path,
// no syscalls: a ring written by the test driver (test/support/mock-split-queue.ts)
// in a plain ArrayBuffer, DeviceQueue.pop + Chain.gather + FuseServer.handle
// (zero-copy ReadTarget) + scatter + pushUsed + notify decision, as the
// data-plane worker does it, over the memory backend. Compare with the
// daemon's CPU per op in bench/daemon-latency.ts: the rest is syscalls and FFI.
//   node --import tsx bench/daemon-hotpath.ts [--ops N]
// May import node:*, src/ and test/support. Not part of `npm test`.
import { DeviceQueue } from '../src/virtio/device-queue.ts';
import { Chain } from '../src/virtio/chain.ts';
import { GuestMemory } from '../src/virtio/memory.ts';
import { FuseServer } from '../src/fuse/server.ts';
import { MemoryFs } from '../src/fs/memory/memory-fs.ts';
import { MockSplitQueue } from '../test/support/mock-split-queue.ts';

const argv = process.argv.slice(2);
const ops = Number(argv[argv.indexOf('--ops') + 1] || 300000);
const QS = 16;
const drv = new MockSplitQueue({ gpaBase: 0x10_0000, uvaBase: 0x7f12_3400_0000, ramSize: 1 << 20, queueSize: QS });
const mem = new GuestMemory(drv.regions());
const dq = new DeviceQueue();
dq.setSize(QS);
dq.setAddresses(drv.ringAddresses());
dq.setBase(0);
dq.eventIdx = true;
const server = new FuseServer(new MemoryFs());
const reqBuf = Buffer.alloc(server.requestBufferSize);
const chain = new Chain(256);

function req(opcode: number, unique: number, nodeid: number, args: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32LE(40 + args.length, 0); h.writeUInt32LE(opcode, 4); h.writeUInt32LE(unique, 8); h.writeUInt32LE(nodeid, 16);
  return Buffer.concat([h, args]);
}
/** One request through the device path: returns the reply bytes written. */
let curChain: Chain | null = null;
const target = (size: number) => (curChain ? curChain.writableView(mem, 16, size) : null);
function serveOne(): number {
  dq.disableNotification(mem);
  if (!dq.pop(mem, chain)) throw new Error('nothing pending');
  const n = chain.gather(mem, reqBuf);
  curChain = chain;
  const reply = server.handle(reqBuf.subarray(0, n), target)!;
  curChain = null;
  const direct = server.directBytes;
  const w = chain.scatter(mem, reply, reply.length) + direct;
  dq.pushUsed(mem, chain.head, w);
  dq.needsNotify(mem);
  dq.enableNotification(mem);
  return w;
}
// Request and reply space, reused: [request | 16 + 4096 reply].
const reqAt = drv.alloc(256);
const replyAt = drv.alloc(16 + 4096);
function submit(r: Buffer, replyLen: number): number {
  drv.bytes.set(r, reqAt - 0x10_0000);
  drv.writeDesc(0, reqAt, r.length, 1, 1);
  drv.writeDesc(1, replyAt, replyLen, 2, 0);
  drv.publish(0);
  const w = serveOne();
  drv.takeUsed();
  return w;
}
const u32 = (x: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(x); return b; };
const u64 = (x: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(x)); return b; };
submit(req(26, 2, 0, Buffer.concat([u32(7), u32(38), u32(0x20000), u32(0), u32(0), Buffer.alloc(44)])), 16 + 4096);
submit(req(35, 4, 1, Buffer.concat([u32(0o102), u32(0o100644), u32(0o022), u32(0), Buffer.from('f\0')])), 16 + 4096);
const nodeid = Number(Buffer.from(drv.read(replyAt + 16, 8)).readBigUInt64LE(0));
const fh = Number(Buffer.from(drv.read(replyAt + 16 + 128, 8)).readBigUInt64LE(0));
// 64 pages of data to read back.
const w = req(16, 8, nodeid, Buffer.concat([u64(fh), u64(0), u32(4096), u32(0), u64(0), u32(0), u32(0)]));
const big = Buffer.concat([w, Buffer.alloc(4096, 1)]);
big.writeUInt32LE(big.length, 0);
for (let off = 0; off < 64; off++) {
  big.writeUInt32LE(off * 4096, 48);
  const at = drv.alloc(big.length);
  drv.bytes.set(big, at - 0x10_0000);
  drv.writeDesc(0, at, big.length, 1, 1);
  drv.writeDesc(1, replyAt, 16 + 8, 2, 0);
  drv.publish(0);
  serveOne();
  drv.takeUsed();
}
function run(name: string, make: (i: number) => Buffer, replyLen: number): void {
  for (let rep = 0; rep < 3; rep++) {
    // CPU time, not wall time: the machine is shared, preemption must not count.
    const c0 = process.cpuUsage();
    for (let i = 0; i < ops; i++) submit(make(i), replyLen);
    const c = process.cpuUsage(c0);
    const us = (c.user + c.system) / ops;
    if (rep === 2) console.log(`${name}: ${us.toFixed(2)} µs CPU per request (device path + server + memory backend + test driver, no syscalls)`);
  }
}
const reads = Array.from({ length: 64 }, (_, i) => req(15, 10, nodeid, Buffer.concat([u64(fh), u64(i * 4096), u32(4096), u32(0), u64(0), u32(0), u32(0)])));
run('READ 4 KiB', (i) => reads[i & 63]!, 16 + 4096);
const getattr = req(3, 12, nodeid, Buffer.concat([u32(0), u32(0), u64(0)]));
run('GETATTR', () => getattr, 16 + 104);
