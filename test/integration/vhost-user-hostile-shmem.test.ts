// A hostile vhost-user frontend against the real `virtiofs-ts serve
// --dax-window` binary: it answers the daemon's SHMEM_MAP (sent while a
// FUSE_SETUPMAPPING is in flight) by first removing, with REM_MEM_REG, the
// guest-memory region that holds the request's buffers (then, a second time,
// the region that holds the ring), and only then acks the map. The daemon
// handles REM_MEM_REG while it waits for that ack (QEMU adds and removes
// regions there for real); the in-flight request must still be finished
// through mappings that stay valid until its reply is published, so the
// daemon never touches unmapped memory (before the fix it died of SIGSEGV),
// keeps serving, unmaps the removed regions afterwards and leaks no fd.
// Frontend and ring driver are the independent test ones
// (test/support/vhost-user-test-frontend.ts, mock-split-queue.ts).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { memfdCreate, mapFd, unmap } from '../../src/sys/mmap.ts';
import { closeFd, eventfdCreate, eventfdDrain, eventfdSignal } from '../../src/sys/eventfd.ts';
import { closeSocket, pollFd, socketPair, UnixChannel } from '../../src/sys/unix-socket.ts';
import { MockSplitQueue } from '../support/mock-split-queue.ts';
import { startServe, type ServeDaemon } from '../support/serve-daemon.ts';
import { NEED_REPLY, R, TestFrontend, fuseInitRequest } from '../support/vhost-user-test-frontend.ts';

const dir = mkdtempSync(join(tmpdir(), 'vu-hostile-shmem-'));
const daemons: ServeDaemon[] = [];
after(() => {
  for (const d of daemons) d.kill();
  rmSync(dir, { recursive: true, force: true });
});

const MiB = 1 << 20;
const F_VERSION_1 = 1n << 32n;
const F_PROTOCOL = 1n << 30n;
const PF_REPLY_ACK = 1n << 3n;
const PF_BACKEND_REQ = 1n << 5n;
const PF_BACKEND_SEND_FD = 1n << 10n;
const PF_CONFIGURE_MEM_SLOTS = 1n << 15n;
const PF_SHMEM = 1n << 22n;
/** Backend -> frontend request numbers (vhost-user spec). */
const SHMEM_MAP = 9;
const SHMEM_MAP_PAYLOAD = 40;
/** FUSE opcodes (fuse.h). */
const LOOKUP = 1, GETATTR = 3, OPEN = 14, SETUPMAPPING = 48;
const SETUPMAPPING_FLAG_READ = 2;

/** The daemon's mappings of a memfd we named, from /proc/PID/maps. */
function mappingsOf(pid: number, name: string): number {
  return readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => l.includes(`/memfd:${name} `)).length;
}

/** Poll `cond`; fails at once when the daemon died (a crash shows as its signal). */
async function until(what: string, cond: () => boolean, d: ServeDaemon, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    const { exitCode, signalCode } = d.child;
    if (exitCode !== null || signalCode !== null) assert.fail(`the daemon died (${signalCode ?? `exit ${exitCode}`}) while waiting for: ${what}\n${d.log()}`);
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** fuse_in_header (40 bytes) + args. */
function fuseRequest(opcode: number, unique: bigint, nodeid: bigint, args: Buffer): Buffer {
  const b = Buffer.alloc(40 + args.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(unique, 8);
  b.writeBigUInt64LE(nodeid, 16);
  args.copy(b, 40);
  return b;
}

/** struct vhost_user_memory_region preceded by u64 padding (ADD/REM_MEM_REG). */
function singleRegion(gpa: number, size: number, uva: number): Buffer {
  const p = Buffer.alloc(40);
  p.writeBigUInt64LE(BigInt(gpa), 8);
  p.writeBigUInt64LE(BigInt(size), 16);
  p.writeBigUInt64LE(BigInt(uva), 24);
  return p;
}

test('a frontend that removes the memory of an in-flight SETUPMAPPING (its buffers, then its ring) before acking SHMEM_MAP: no crash, the reply is published, serving goes on, nothing leaks', { timeout: 60_000 }, async () => {
  const share = mkdtempSync(join(dir, 'share-'));
  writeFileSync(join(share, 'f.bin'), randomBytes(256 * 1024));
  const before = JSON.stringify(readdirSync(share).sort());
  const sock = join(dir, 'd.sock');
  const d = await startServe(['--socket-path', sock, '--shared-dir', share, '--dax-window', '2M', '--log-level', 'info'], sock);
  daemons.push(d);
  const pid = d.child.pid!;
  const fe = TestFrontend.connect(sock);

  const want = PF_REPLY_ACK | PF_BACKEND_REQ | PF_BACKEND_SEND_FD | PF_CONFIGURE_MEM_SLOTS | PF_SHMEM;
  assert.equal(fe.getU64(R.GET_PROTOCOL_FEATURES) & want, want, 'a --dax-window daemon offers SHMEM, BACKEND_REQ, BACKEND_SEND_FD, REPLY_ACK, CONFIGURE_MEM_SLOTS');
  fe.u64(R.SET_PROTOCOL_FEATURES, want);
  fe.send(R.SET_OWNER);
  fe.u64(R.SET_FEATURES, F_VERSION_1 | F_PROTOCOL, { flags: NEED_REPLY });
  assert.equal(fe.ack(R.SET_FEATURES), 0n);
  const [backendCh, theirEnd] = socketPair();
  fe.send(R.SET_BACKEND_REQ_FD, Buffer.alloc(0), { flags: NEED_REPLY, fds: [theirEnd] });
  assert.equal(fe.ack(R.SET_BACKEND_REQ_FD), 0n);
  closeSocket(theirEnd);
  const backend = new UnixChannel(backendCh);

  // Region A holds the ring (and the small requests); region B the SETUPMAPPING requests' buffers.
  const A = { gpa: 0, uva: 0x7e00_0000_0000, name: 'c2-ring' };
  const B = { gpa: 0x4000_0000, uva: 0x7e00_4000_0000, name: 'c2-bufs' };
  const fdA = memfdCreate(A.name, MiB);
  const fdB = memfdCreate(B.name, MiB);
  const mapA = mapFd(fdA, MiB, 0);
  const mapB = mapFd(fdB, MiB, 0);
  const bytesB = new Uint8Array(mapB.buffer, 0, MiB);
  const addRegion = (r: typeof A, fd: number) => {
    fe.send(R.ADD_MEM_REG, singleRegion(r.gpa, MiB, r.uva), { flags: NEED_REPLY, fds: [fd] });
    assert.equal(fe.ack(R.ADD_MEM_REG), 0n, `ADD_MEM_REG ${r.name}`);
  };
  addRegion(A, fdA);
  addRegion(B, fdB);
  assert.equal(mappingsOf(pid, B.name), 1, 'the daemon mapped region B');

  const q = new MockSplitQueue({ gpaBase: A.gpa, uvaBase: A.uva, ramSize: MiB, queueSize: 16 }, mapA.buffer);
  const kick = eventfdCreate();
  const call = eventfdCreate();
  const a = q.ringAddresses();
  fe.vringState(R.SET_VRING_NUM, 1, 16, NEED_REPLY);
  assert.equal(fe.ack(R.SET_VRING_NUM), 0n);
  fe.vringState(R.SET_VRING_BASE, 1, 0, NEED_REPLY);
  assert.equal(fe.ack(R.SET_VRING_BASE), 0n);
  fe.vringAddr(1, a.desc, a.used, a.avail, NEED_REPLY);
  assert.equal(fe.ack(R.SET_VRING_ADDR), 0n);
  fe.u64(R.SET_VRING_CALL, 1n, { flags: NEED_REPLY, fds: [call] });
  assert.equal(fe.ack(R.SET_VRING_CALL), 0n);
  fe.u64(R.SET_VRING_KICK, 1n, { flags: NEED_REPLY, fds: [kick] });
  assert.equal(fe.ack(R.SET_VRING_KICK), 0n);
  fe.vringState(R.SET_VRING_ENABLE, 1, 1, NEED_REPLY);
  assert.equal(fe.ack(R.SET_VRING_ENABLE), 0n);

  // Chains: descriptors in A's table, numbered by us; buffers in A (q.alloc) or in B (a bump allocator).
  let desc = 0;
  let heapB = 0x1000;
  const allocB = (len: number, fill?: Buffer) => {
    const gpa = B.gpa + heapB;
    heapB += Math.ceil(len / 64) * 64;
    if (fill) bytesB.set(fill, gpa - B.gpa);
    return gpa;
  };
  const publish = (req: Buffer, replyLen: number, inB: boolean) => {
    const reqGpa = inB ? allocB(req.length, req) : q.alloc(req.length, req);
    const outGpa = inB ? allocB(replyLen) : q.alloc(replyLen);
    const head = desc++ % 16;
    const tail = desc++ % 16;
    q.writeDesc(head, reqGpa, req.length, 1, tail);
    q.writeDesc(tail, outGpa, replyLen, 2, 0);
    q.setUsedEvent(q.usedIdx());
    q.publish(head);
    eventfdSignal(kick);
    return { head, outGpa };
  };
  const reply = (outGpa: number, len: number) =>
    Buffer.from(outGpa >= B.gpa ? bytesB.slice(outGpa - B.gpa, outGpa - B.gpa + len) : q.read(outGpa, len));
  const waitUsed = async (head: number, what: string) => {
    let got: { id: number; len: number }[] = [];
    await until(`${what} answered (daemon log:\n${d.log()})`, () => {
      if (pollFd(call, 0)) eventfdDrain(call);
      got = got.concat(q.takeUsed());
      return got.length > 0;
    }, d);
    assert.deepEqual(got.map((u) => u.id), [head], what);
    return got[0]!;
  };
  const call1 = async (req: Buffer, replyLen: number, inB: boolean, what: string) => {
    const { head, outGpa } = publish(req, replyLen, inB);
    const u = await waitUsed(head, what);
    const out = reply(outGpa, u.len);
    assert.equal(out.readBigUInt64LE(8), req.readBigUInt64LE(8), `${what}: unique echoed`);
    assert.equal(out.readInt32LE(4), 0, `${what}: succeeded`);
    return out;
  };

  await call1(fuseInitRequest(1n), 256, false, 'INIT');
  const entry = await call1(fuseRequest(LOOKUP, 2n, 1n, Buffer.from('f.bin\0')), 256, false, 'LOOKUP f.bin');
  const nodeid = entry.readBigUInt64LE(16);
  const open = await call1(fuseRequest(OPEN, 3n, nodeid, Buffer.alloc(8)), 256, false, 'OPEN');
  const fh = open.readBigUInt64LE(16);
  const setup = (unique: bigint, moffset: number) => {
    const p = Buffer.alloc(40); // fh, foffset, len, flags, moffset
    p.writeBigUInt64LE(fh, 0);
    p.writeBigUInt64LE(0n, 8);
    p.writeBigUInt64LE(64n * 1024n, 16);
    p.writeBigUInt64LE(BigInt(SETUPMAPPING_FLAG_READ), 24);
    p.writeBigUInt64LE(BigInt(moffset), 32);
    return fuseRequest(SETUPMAPPING, unique, nodeid, p);
  };
  const fdCount = () => readdirSync(`/proc/${pid}/fd`).length;
  const fdsBefore = fdCount();

  /** Receive the daemon's SHMEM_MAP, remove `victim` while it waits, then ack the map. */
  const hostileMap = (victim: typeof A, victimFd: number) => {
    assert.ok(pollFd(backendCh, 10_000), `SHMEM_MAP arrives on the backend channel (daemon log:\n${d.log()})`);
    const m = Buffer.alloc(12 + SHMEM_MAP_PAYLOAD);
    const fds: number[] = [];
    let got = 0;
    while (got < m.length) {
      assert.ok(pollFd(backendCh, 5000));
      const n = backend.recv(m, got, m.length - got, fds);
      assert.ok(n > 0, 'backend channel open');
      got += n;
    }
    for (const fd of fds) closeFd(fd);
    assert.equal(m.readUInt32LE(0), SHMEM_MAP);
    assert.equal(fds.length, 1, 'SHMEM_MAP carries the file fd');
    // The hostile part: take away memory the in-flight request lives in (QEMU attaches the fd, so do we).
    fe.send(R.REM_MEM_REG, singleRegion(victim.gpa, MiB, victim.uva), { flags: NEED_REPLY, fds: [victimFd] });
    assert.equal(fe.ack(R.REM_MEM_REG), 0n, `REM_MEM_REG ${victim.name} during the wait is accepted`);
    const ack = Buffer.alloc(20);
    ack.writeUInt32LE(SHMEM_MAP, 0);
    ack.writeUInt32LE(1 | 0x4, 4); // version 1, REPLY
    ack.writeUInt32LE(8, 8);
    ack.writeBigUInt64LE(0n, 12);
    assert.equal(backend.send(ack, 0, ack.length), ack.length);
  };

  // 1. The request's own buffers go away mid-request.
  const s1 = setup(10n, 0);
  const p1 = publish(s1, 64, true);
  hostileMap(B, fdB);
  const u1 = await waitUsed(p1.head, 'SETUPMAPPING whose buffers were removed mid-request');
  assert.equal(d.child.exitCode, null, `the daemon is alive:\n${d.log()}`);
  // Its reply went to where its buffer was (our mapping of B's memfd still shows it).
  const out1 = reply(p1.outGpa, u1.len);
  assert.equal(u1.len, 16);
  assert.equal(out1.readBigUInt64LE(8), 10n, 'unique echoed');
  assert.equal(out1.readInt32LE(4), 0, 'the map succeeded');
  await until('the daemon unmaps region B once the request is done', () => mappingsOf(pid, B.name) === 0, d);
  // Still serving: a request in A, then B added back and a request there.
  await call1(fuseRequest(GETATTR, 11n, nodeid, Buffer.alloc(16)), 256, false, 'GETATTR after the removal');
  addRegion(B, fdB);
  assert.equal(mappingsOf(pid, B.name), 1);
  await call1(fuseRequest(GETATTR, 12n, nodeid, Buffer.alloc(16)), 256, true, 'GETATTR with buffers in the re-added region');

  // 2. The ring itself goes away mid-request: the reply is still published
  // (through the mapping kept for it), then the queue stops cleanly: the
  // frontend took its ring away.
  const p2 = publish(setup(13n, 64 * 1024), 64, true);
  hostileMap(A, fdA);
  const u2 = await waitUsed(p2.head, 'SETUPMAPPING whose ring was removed mid-request');
  assert.equal(reply(p2.outGpa, u2.len).readInt32LE(4), 0);
  await until('the daemon unmaps region A once the request is done', () => mappingsOf(pid, A.name) === 0, d);
  await until('queue 1 stops: its ring is outside guest memory', () => /queue 1 stopped/.test(d.log()), d);
  assert.equal(fe.getU64(R.GET_QUEUE_NUM), 2n, 'the control plane still answers');
  assert.equal(d.child.exitCode, null, 'the daemon is alive');
  assert.equal(fdCount(), fdsBefore, `no fd leaked (the removed regions' fds were closed):\n${readdirSync(`/proc/${pid}/fd`).join(' ')}`);

  fe.close();
  assert.equal(await d.exited, 0, `the daemon exits 0 when the frontend leaves:\n${d.log()}`);
  assert.doesNotMatch(d.log(), /SIGSEGV|Segmentation/);
  closeSocket(backendCh);
  unmap(mapA);
  unmap(mapB);
  for (const fd of [fdA, fdB, kick, call]) closeFd(fd);
  assert.equal(JSON.stringify(readdirSync(share).sort()), before, 'the shared directory is untouched');
});
