// A hostile vhost-user frontend against the real `virtiofs-ts serve` binary,
// over a real Unix socket with memfd guest memory and eventfds. The frontend
// (test/support/vhost-user-test-frontend.ts) and the ring driver
// (test/support/mock-split-queue.ts) are written from the specs' raw layouts,
// independently of the production code. The daemon must refuse each bad
// message or ring cleanly, keep serving what is still sound, exit cleanly, and
// leave the shared directory untouched.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memfdCreate, mapFd, unmap } from '../../src/sys/mmap.ts';
import { closeFd, eventfdCreate, eventfdDrain, eventfdSignal } from '../../src/sys/eventfd.ts';
import { pollFd } from '../../src/sys/unix-socket.ts';
import { MockSplitQueue } from '../support/mock-split-queue.ts';
import { startServe, type ServeDaemon } from '../support/serve-daemon.ts';
import { NEED_REPLY, R, TestFrontend, fuseInitRequest } from '../support/vhost-user-test-frontend.ts';

const dir = mkdtempSync(join(tmpdir(), 'vu-hostile-'));
const daemons: ServeDaemon[] = [];
after(() => {
  for (const d of daemons) d.kill();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
async function daemon(share: string): Promise<{ d: ServeDaemon; fe: TestFrontend }> {
  const sock = join(dir, `s${n++}.sock`);
  const d = await startServe(['--socket-path', sock, '--shared-dir', share, '--log-level', 'info'], sock);
  daemons.push(d);
  return { d, fe: TestFrontend.connect(sock) };
}

async function exitCode(d: ServeDaemon, ms = 10_000): Promise<number | string> {
  return Promise.race([d.exited, new Promise<string>((r) => setTimeout(() => r('still running'), ms))]);
}

function makeShare(): string {
  const share = mkdtempSync(join(dir, 'share-'));
  mkdirSync(join(share, 'd'));
  writeFileSync(join(share, 'd', 'f'), 'keep me');
  return share;
}
const listing = (p: string) => JSON.stringify(readdirSync(p, { recursive: true }).sort());

const MiB = 1 << 20;
const F_VERSION_1 = 1n << 32n;
const F_INDIRECT = 1n << 28n;
const F_EVENT_IDX = 1n << 29n;
const F_PROTOCOL = 1n << 30n;
const PF_MQ = 1n << 0n;
const PF_REPLY_ACK = 1n << 3n;
const PF_CONFIG = 1n << 9n;

test('bad messages are refused with an ack, hostile rings are returned empty, sound queues keep serving, mid-request disconnect exits 0', { timeout: 60_000 }, async () => {
  const share = makeShare();
  const before = listing(share);
  const { d, fe } = await daemon(share);

  const features = fe.getU64(R.GET_FEATURES);
  for (const f of [F_VERSION_1, F_INDIRECT, F_EVENT_IDX, F_PROTOCOL]) assert.ok(features & f, `feature 0x${f.toString(16)} offered`);
  const pf = fe.getU64(R.GET_PROTOCOL_FEATURES);
  assert.equal(pf & PF_CONFIG, 0n, 'CONFIG must not be offered (QEMU 7.1-8.0 crash on it)');
  assert.ok(pf & PF_REPLY_ACK);
  fe.u64(R.SET_PROTOCOL_FEATURES, PF_MQ | PF_REPLY_ACK);
  fe.send(R.SET_OWNER);
  assert.equal(fe.getU64(R.GET_QUEUE_NUM), 2n);

  // Refusals: each gets a failure ack and the connection stays.
  fe.send(99, Buffer.alloc(0), { flags: NEED_REPLY });
  assert.notEqual(fe.ack(99), 0n, 'unknown request refused');
  fe.memTable([{ gpa: 0, size: MiB, uva: 0x7e00_0000_0000, offset: 0 }], [], NEED_REPLY);
  assert.notEqual(fe.ack(R.SET_MEM_TABLE), 0n, 'memory table without its fd refused');
  fe.u64(R.SET_VRING_KICK, 1n, { flags: NEED_REPLY });
  assert.notEqual(fe.ack(R.SET_VRING_KICK), 0n, 'kick without fd (and without the no-fd bit) refused');
  fe.vringState(R.SET_VRING_NUM, 1, 1000, NEED_REPLY);
  assert.notEqual(fe.ack(R.SET_VRING_NUM), 0n, 'queue size that is not a power of two refused');
  fe.vringState(R.SET_VRING_NUM, 7, 16, NEED_REPLY);
  assert.notEqual(fe.ack(R.SET_VRING_NUM), 0n, 'vring index past our queues refused');
  fe.u64(R.SET_FEATURES, 1n << 60n, { flags: NEED_REPLY });
  assert.notEqual(fe.ack(R.SET_FEATURES), 0n, 'features never offered refused');
  fe.send(R.SET_LOG_BASE, Buffer.alloc(16), { flags: NEED_REPLY });
  assert.notEqual(fe.ack(R.SET_LOG_BASE), 0n, 'dirty logging refused');
  const efd = eventfdCreate();
  fe.send(R.SET_OWNER, Buffer.alloc(0), { flags: NEED_REPLY, fds: [efd] });
  assert.notEqual(fe.ack(R.SET_OWNER), 0n, 'fd attached to a request that takes none refused');
  closeFd(efd);
  assert.equal(fe.getU64(R.GET_QUEUE_NUM), 2n, 'still talking after the refusals');

  // Memory tables the daemon must not map: a region longer than its file
  // (touching past EOF would SIGBUS the daemon), an fd that is no memory file,
  // and a table whose second region is bad after a good first one (all or
  // nothing). None may leak an fd or a mapping in the daemon.
  const fdCount = () => readdirSync(`/proc/${d.child.pid}/fd`).length;
  const fdsBefore = fdCount();
  const small = memfdCreate('small', MiB);
  fe.memTable([{ gpa: 0, size: 2 * MiB, uva: 0x7e00_0000_0000, offset: 0 }], [small], NEED_REPLY);
  assert.notEqual(fe.ack(R.SET_MEM_TABLE), 0n, 'region longer than its memfd refused');
  fe.memTable([{ gpa: 0, size: MiB, uva: 0x7e00_0000_0000, offset: 4096 }], [small], NEED_REPLY);
  assert.notEqual(fe.ack(R.SET_MEM_TABLE), 0n, 'region running past EOF through its offset refused');
  const notMemory = eventfdCreate();
  fe.memTable([{ gpa: 0, size: MiB, uva: 0x7e00_0000_0000, offset: 0 }, { gpa: 0x4000_0000, size: MiB, uva: 0x7e00_4000_0000, offset: 0 }], [small, notMemory], NEED_REPLY);
  assert.notEqual(fe.ack(R.SET_MEM_TABLE), 0n, 'an eventfd as guest memory refused');
  closeFd(small);
  closeFd(notMemory);
  assert.equal(fdCount(), fdsBefore, 'no fd kept from the refused tables');

  // Proper setup: two memfd regions, queue 0 (hiprio) in one, queue 1 in the other.
  fe.u64(R.SET_FEATURES, F_VERSION_1 | F_INDIRECT | F_EVENT_IDX | F_PROTOCOL, { flags: NEED_REPLY });
  assert.equal(fe.ack(R.SET_FEATURES), 0n);
  const layouts = [
    { gpaBase: 0, uvaBase: 0x7e00_0000_0000, ramSize: MiB, queueSize: 16 },
    { gpaBase: 0x4000_0000, uvaBase: 0x7e00_4000_0000, ramSize: MiB, queueSize: 16 },
  ];
  const memfds = layouts.map((_, i) => memfdCreate(`guest-ram-${i}`, MiB));
  const maps = memfds.map((fd) => mapFd(fd, MiB, 0));
  const qs = layouts.map((l, i) => new MockSplitQueue(l, maps[i]!.buffer));
  fe.memTable(layouts.map((l) => ({ gpa: l.gpaBase, size: l.ramSize, uva: l.uvaBase, offset: 0 })), memfds, NEED_REPLY);
  assert.equal(fe.ack(R.SET_MEM_TABLE), 0n, 'memory table accepted');
  const kicks = [eventfdCreate(), eventfdCreate()];
  const calls = [eventfdCreate(), eventfdCreate()];
  for (let i = 0; i < 2; i++) {
    const q = qs[i]!;
    const a = q.ringAddresses();
    fe.vringState(R.SET_VRING_NUM, i, 16, NEED_REPLY);
    assert.equal(fe.ack(R.SET_VRING_NUM), 0n);
    fe.vringState(R.SET_VRING_BASE, i, 0, NEED_REPLY);
    assert.equal(fe.ack(R.SET_VRING_BASE), 0n);
    fe.vringAddr(i, a.desc, a.used, a.avail, NEED_REPLY);
    assert.equal(fe.ack(R.SET_VRING_ADDR), 0n);
    fe.u64(R.SET_VRING_CALL, BigInt(i), { flags: NEED_REPLY, fds: [calls[i]!] });
    assert.equal(fe.ack(R.SET_VRING_CALL), 0n);
    fe.u64(R.SET_VRING_KICK, BigInt(i), { flags: NEED_REPLY, fds: [kicks[i]!] });
    assert.equal(fe.ack(R.SET_VRING_KICK), 0n);
    fe.vringState(R.SET_VRING_ENABLE, i, 1, NEED_REPLY);
    assert.equal(fe.ack(R.SET_VRING_ENABLE), 0n);
  }

  const roundTrip = (i: number, expect: number) => {
    const q = qs[i]!;
    const got: { id: number; len: number }[] = [];
    q.setUsedEvent(q.usedIdx());
    eventfdSignal(kicks[i]!);
    const t0 = Date.now();
    while (got.length < expect && Date.now() - t0 < 5000) {
      if (pollFd(calls[i]!, 200)) eventfdDrain(calls[i]!);
      got.push(...q.takeUsed());
    }
    return got;
  };

  // Hostile chains on the request queue, each with a writable buffer where one fits.
  const q1 = qs[1]!;
  const base = layouts[1]!.gpaBase;
  const heads: number[] = [];
  // 1. a loop: 0 -> 1 -> 0
  const buf = q1.alloc(64);
  q1.writeDesc(0, buf, 64, 1, 1);
  q1.writeDesc(1, buf, 64, 1, 0);
  heads.push(0);
  // 2. outside memory (the hole between the two regions)
  q1.writeDesc(2, base - 0x1000, 64, 0, 0);
  heads.push(2);
  // 3. indirect inside indirect
  const inner = q1.alloc(16);
  q1.writeDesc(0, q1.alloc(64), 64, 0, 0, inner);
  const outer = q1.alloc(16);
  q1.writeDesc(0, inner, 16, 4, 0, outer);
  q1.writeDesc(3, outer, 16, 4, 0);
  heads.push(3);
  // 4. too short for a FUSE header (10 readable bytes) + a writable buffer
  q1.writeDesc(4, q1.alloc(10), 10, 1, 5);
  q1.writeDesc(5, q1.alloc(64), 64, 2, 0);
  heads.push(4);
  // 5. readable after writable
  q1.writeDesc(6, q1.alloc(64), 64, 1 | 2, 7);
  q1.writeDesc(7, q1.alloc(64), 64, 0, 0);
  heads.push(6);
  // 6. a length that wraps past 2^64
  q1.writeDesc(8, 0xffff_ffff_ffff_f000n, 0x2000, 0, 0);
  heads.push(8);
  for (const h of heads) q1.publish(h);
  const refused = roundTrip(1, heads.length);
  assert.deepEqual(refused, heads.map((id) => ({ id, len: 0 })), 'every hostile chain comes back with 0 bytes');

  // A sound request on the same queue is answered.
  const init = q1.addChain([{ data: fuseInitRequest(0x1234n) }, { len: 4096, writable: true }]);
  q1.publish(init.head);
  const [ok] = roundTrip(1, 1);
  assert.ok(ok, 'INIT answered');
  assert.equal(ok.id, init.head);
  const out = Buffer.from(q1.read(init.addrs[1]!, ok.len));
  assert.equal(out.readUInt32LE(0), ok.len, 'fuse_out_header.len = bytes used');
  assert.equal(out.readInt32LE(4), 0, 'INIT succeeded');
  assert.equal(out.readBigUInt64LE(8), 0x1234n, 'unique echoed');
  assert.equal(out.readUInt32LE(16), 7, 'FUSE major 7');

  // An avail idx far past the queue size breaks queue 1 only; queue 0 still serves.
  q1.setAvailIdx(q1.usedIdx() + 200);
  eventfdSignal(kicks[1]!);
  const q0 = qs[0]!;
  const again = q0.addChain([{ data: fuseInitRequest(0x99n) }, { len: 256, writable: true }]);
  q0.publish(again.head);
  const [r0] = roundTrip(0, 1);
  assert.ok(r0, 'queue 0 still answers after queue 1 broke');
  const out0 = Buffer.from(q0.read(again.addrs[1]!, 16));
  assert.equal(out0.readBigUInt64LE(8), 0x99n);
  // A second INIT means the guest driver restarted: a fresh session, answered.
  assert.equal(out0.readInt32LE(4), 0, 'a second INIT starts a new session');
  // GET_VRING_BASE still answers for the broken ring (the connection is sound).
  fe.vringState(R.GET_VRING_BASE, 1, 0);
  const vb = fe.recv();
  assert.equal(vb.request, R.GET_VRING_BASE);
  assert.equal(vb.payload.readUInt32LE(0), 1);

  // Disconnect mid-request: a request published, half a header sent, then gone.
  q0.publish(q0.addChain([{ data: fuseInitRequest(0x5n) }, { len: 256, writable: true }]).head);
  fe.sendRaw(Buffer.from([R.GET_QUEUE_NUM, 0, 0, 0, 1, 0]));
  fe.close();
  assert.equal(await exitCode(d), 0, `daemon must exit 0 when the frontend leaves:\n${d.log()}`);
  assert.match(d.log(), /refused SET_MEM_TABLE/);
  assert.match(d.log(), /CHAIN_LOOP/);
  assert.match(d.log(), /NESTED_INDIRECT/);
  assert.match(d.log(), /queue 1 stopped: INVALID_AVAIL_IDX/);
  assert.match(d.log(), /new FUSE session/);
  maps.forEach((m) => unmap(m));
  [...memfds, ...kicks, ...calls].forEach((fd) => closeFd(fd));
  assert.equal(listing(share), before, 'the shared directory is untouched');
});

test('a header with wrong version bits ends the connection; the daemon says why and exits 1', { timeout: 30_000 }, async () => {
  const { d, fe } = await daemon(makeShare());
  fe.send(R.GET_FEATURES, Buffer.alloc(0), { version: 2 });
  assert.equal(fe.closedByPeer(), true);
  fe.close();
  assert.equal(await exitCode(d), 1);
  assert.match(d.log(), /version bits 2/);
});

test('an announced payload beyond any request ends the connection', { timeout: 30_000 }, async () => {
  const { d, fe } = await daemon(makeShare());
  const h = Buffer.alloc(12);
  h.writeUInt32LE(R.SET_MEM_TABLE, 0);
  h.writeUInt32LE(1, 4);
  h.writeUInt32LE(0x7fff_ffff, 8);
  fe.sendRaw(h);
  assert.equal(fe.closedByPeer(), true);
  fe.close();
  assert.equal(await exitCode(d), 1);
  assert.match(d.log(), /payload/);
});

test('memory slots: ADD_MEM_REG serves a ring, REM_MEM_REG of an unknown region is refused, RESET_DEVICE stops the rings', { timeout: 30_000 }, async () => {
  const share = makeShare();
  const { d, fe } = await daemon(share);
  const PF_CONFIGURE_MEM_SLOTS = 1n << 15n;
  const PF_RESET_DEVICE = 1n << 13n;
  assert.ok(fe.getU64(R.GET_PROTOCOL_FEATURES) & PF_CONFIGURE_MEM_SLOTS);
  fe.u64(R.SET_PROTOCOL_FEATURES, PF_REPLY_ACK | PF_CONFIGURE_MEM_SLOTS | PF_RESET_DEVICE);
  assert.ok(fe.getU64(R.GET_MAX_MEM_SLOTS) >= 8n);
  fe.u64(R.SET_FEATURES, F_VERSION_1 | F_PROTOCOL, { flags: NEED_REPLY });
  assert.equal(fe.ack(R.SET_FEATURES), 0n);

  const layout = { gpaBase: 0x8000_0000, uvaBase: 0x7e00_8000_0000, ramSize: MiB, queueSize: 8 };
  const region = (gpa: number) => {
    const p = Buffer.alloc(40); // u64 padding, then {gpa, size, uva, mmap_offset}
    p.writeBigUInt64LE(BigInt(gpa), 8);
    p.writeBigUInt64LE(BigInt(MiB), 16);
    p.writeBigUInt64LE(BigInt(layout.uvaBase), 24);
    return p;
  };
  const memfd = memfdCreate('slot', MiB);
  const map = mapFd(memfd, MiB, 0);
  fe.send(R.ADD_MEM_REG, region(layout.gpaBase), { flags: NEED_REPLY });
  assert.notEqual(fe.ack(R.ADD_MEM_REG), 0n, 'ADD_MEM_REG without its fd refused');
  fe.send(R.ADD_MEM_REG, region(layout.gpaBase), { flags: NEED_REPLY, fds: [memfd] });
  assert.equal(fe.ack(R.ADD_MEM_REG), 0n);
  fe.send(R.REM_MEM_REG, region(0x1234_0000), { flags: NEED_REPLY });
  assert.notEqual(fe.ack(R.REM_MEM_REG), 0n, 'removing a region that was never added is refused');

  const q = new MockSplitQueue(layout, map.buffer);
  const a = q.ringAddresses();
  const kick = eventfdCreate();
  const call = eventfdCreate();
  fe.vringState(R.SET_VRING_NUM, 1, 8);
  fe.vringState(R.SET_VRING_BASE, 1, 0);
  fe.vringAddr(1, a.desc, a.used, a.avail);
  fe.u64(R.SET_VRING_CALL, 1n, { fds: [call] });
  fe.u64(R.SET_VRING_KICK, 1n, { fds: [kick] });
  // PROTOCOL_FEATURES negotiated: the ring waits for SET_VRING_ENABLE(1).
  const c1 = q.addChain([{ data: fuseInitRequest(0x77n) }, { len: 256, writable: true }]);
  q.publish(c1.head);
  eventfdSignal(kick);
  assert.equal(pollFd(call, 500), false, 'a disabled ring does not serve');
  fe.vringState(R.SET_VRING_ENABLE, 1, 1, NEED_REPLY);
  assert.equal(fe.ack(R.SET_VRING_ENABLE), 0n);
  assert.equal(pollFd(call, 5000), true, 'enabled: the waiting request is served');
  eventfdDrain(call);
  const [u] = q.takeUsed();
  assert.equal(u?.id, c1.head);
  assert.equal(Buffer.from(q.read(c1.addrs[1]!, 16)).readBigUInt64LE(8), 0x77n);

  // Stop and restart (what QEMU does for a VM stop/cont): GET_VRING_BASE stops
  // the ring and says where it stopped; a request made meanwhile waits; the
  // ring resumes from that base with a new kick fd and serves it.
  fe.vringState(R.GET_VRING_BASE, 1, 0);
  const base = fe.recv();
  assert.equal(base.request, R.GET_VRING_BASE);
  assert.deepEqual([base.payload.readUInt32LE(0), base.payload.readUInt32LE(4)], [1, 1], 'ring 1 stopped at avail idx 1');
  const waiting = q.addChain([{ data: fuseInitRequest(0x79n) }, { len: 256, writable: true }]);
  q.publish(waiting.head);
  eventfdSignal(kick);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(q.takeUsed(), [], 'a stopped ring serves nothing');
  const kick2 = eventfdCreate();
  fe.vringState(R.SET_VRING_BASE, 1, 1);
  fe.u64(R.SET_VRING_KICK, 1n, { fds: [kick2], flags: NEED_REPLY });
  assert.equal(fe.ack(R.SET_VRING_KICK), 0n);
  assert.equal(pollFd(call, 5000), true, 'restarted: the waiting request is served without a kick');
  eventfdDrain(call);
  assert.deepEqual(q.takeUsed().map((x) => x.id), [waiting.head]);
  closeFd(kick2);

  // RESET_DEVICE: rings stop; a request published afterwards is not touched.
  fe.send(R.RESET_DEVICE, Buffer.alloc(0), { flags: NEED_REPLY });
  assert.equal(fe.ack(R.RESET_DEVICE), 0n);
  const c2 = q.addChain([{ data: fuseInitRequest(0x78n) }, { len: 256, writable: true }]);
  q.publish(c2.head);
  eventfdSignal(kick);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(q.takeUsed(), [], 'nothing served after reset');

  fe.close();
  assert.equal(await exitCode(d), 0, d.log());
  unmap(map);
  for (const fd of [memfd, kick, call]) closeFd(fd);
});
