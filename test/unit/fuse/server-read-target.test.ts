// FuseServer.handle's optional zero-copy arguments (vhost-user transport):
// a ReadTarget, where READ data lands while only the header comes back (a
// target that is too small, absent or null falls back to the server's own
// reply buffer; an error leaves directBytes at 0), and WRITE data passed
// apart from the request. Against the real in-memory backend, requests built
// by test/support/bytes.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { FuseServer } from '../../../src/fuse/server.ts';
import { MemoryFs } from '../../../src/fs/memory/memory-fs.ts';
import { bytes, cstr, request, u32, u64, zeros } from '../../support/bytes.ts';

const E = constants.errno;
const INIT = 26, CREATE = 35, READ = 15, WRITE = 16, GETATTR = 3;

function setup() {
  const server = new FuseServer(new MemoryFs());
  let unique = 2n;
  const send = (opcode: number, nodeid: number, args: Buffer, target?: (n: number) => Buffer | null) =>
    server.handle(request(opcode, (unique += 2n), nodeid, args), target);
  assert.equal(send(INIT, 0, bytes(u32(7), u32(38), u32(0x20000), u32(0), u32(0), zeros(44)))!.readInt32LE(4), 0);
  const created = send(CREATE, 1, bytes(u32(2 | 0o100), u32(0o100644), u32(0o022), u32(0), cstr('f')))!;
  assert.equal(created.readInt32LE(4), 0);
  const nodeid = Number(created.readBigUInt64LE(16));
  const fh = Number(created.readBigUInt64LE(16 + 128));
  const data = Buffer.from('0123456789abcdefghij');
  const w = send(WRITE, nodeid, bytes(u64(fh), u64(0), u32(data.length), u32(0), u64(0), u32(0), u32(0), data))!;
  assert.equal(w.readInt32LE(4), 0);
  const readArgs = (offset: number, size: number) => bytes(u64(fh), u64(offset), u32(size), u32(0), u64(0), u32(0), u32(0));
  return { server, send, nodeid, readArgs, data };
}

test('READ data goes into the target; the reply is the header alone, its len counting the payload', () => {
  const { server, send, nodeid, readArgs, data } = setup();
  const guest = Buffer.alloc(64, 0xee);
  const asked: number[] = [];
  const out = send(READ, nodeid, readArgs(2, 32), (n) => { asked.push(n); return guest.subarray(16); })!;
  assert.deepEqual(asked, [32]);
  assert.equal(out.length, 16, 'only the header is returned');
  assert.equal(out.readInt32LE(4), 0);
  assert.equal(out.readUInt32LE(0), 16 + 18, 'len = header + the 18 bytes read (short read at EOF)');
  assert.equal(server.directBytes, 18);
  assert.deepEqual(guest.subarray(16, 34), data.subarray(2));
  // The next request without a target is an ordinary reply again.
  const out2 = send(READ, nodeid, readArgs(0, 4))!;
  assert.equal(server.directBytes, 0);
  assert.equal(out2.readUInt32LE(0), 20);
  assert.deepEqual(out2.subarray(16), data.subarray(0, 4));
});

test('a target that is null or too small falls back to the reply buffer', () => {
  const { server, send, nodeid, readArgs, data } = setup();
  for (const target of [() => null, () => Buffer.alloc(3)]) {
    const out = send(READ, nodeid, readArgs(0, 8), target)!;
    assert.equal(server.directBytes, 0);
    assert.equal(out.length, 24);
    assert.deepEqual(out.subarray(16), data.subarray(0, 8));
  }
});

test('errors and other opcodes never report direct bytes', () => {
  const { server, send, nodeid, readArgs } = setup();
  const guest = Buffer.alloc(64);
  let calls = 0;
  const target = (n: number) => { calls++; return guest.subarray(0, n); };
  // A READ on a handle that does not exist: EBADF, no payload.
  const bad = send(READ, nodeid, bytes(u64(999), u64(0), u32(8), u32(0), u64(0), u32(0), u32(0)), target)!;
  assert.ok(bad.readInt32LE(4) < 0);
  assert.equal(bad.length, 16);
  assert.equal(server.directBytes, 0);
  const attr = send(GETATTR, nodeid, bytes(u32(0), u32(0), u64(0)), target)!;
  assert.equal(attr.readInt32LE(4), 0);
  assert.ok(attr.length > 16);
  assert.equal(server.directBytes, 0);
  // A zero-byte READ does not ask for a target at all.
  const before = calls;
  send(READ, nodeid, readArgs(0, 0), target);
  assert.equal(calls, before);
  assert.equal(server.directBytes, 0);

});

test('WRITE data kept apart (writeData): written from the view; len counts it; mismatches and other opcodes get EINVAL', () => {
  const { server, nodeid, readArgs } = setup();
  let unique = 100n;
  const fh = Number(readArgs(0, 0).readBigUInt64LE(0));
  const head = (opcode: number, args: Buffer, dataLen: number) => {
    const r = request(opcode, (unique += 2n), nodeid, args);
    r.writeUInt32LE(r.length + dataLen, 0);
    return r;
  };
  const payload = Buffer.from('written-through-a-view');
  const w = server.handle(head(WRITE, bytes(u64(fh), u64(4), u32(payload.length), u32(0), u64(0), u32(0), u32(0)), payload.length), undefined, payload)!;
  assert.equal(w.readInt32LE(4), 0);
  assert.equal(w.readUInt32LE(16), payload.length);
  const r = server.handle(request(READ, (unique += 2n), nodeid, readArgs(4, payload.length)))!;
  assert.deepEqual(r.subarray(16), payload);
  // size field disagreeing with the view's length
  const bad = server.handle(head(WRITE, bytes(u64(fh), u64(0), u32(payload.length + 1), u32(0), u64(0), u32(0), u32(0)), payload.length), undefined, payload)!;
  assert.equal(bad.readInt32LE(4), -E.EINVAL);
  // header len not counting the data: dropped as a broken header
  assert.equal(server.handle(request(WRITE, (unique += 2n), nodeid, bytes(u64(fh), u64(0), u32(payload.length), u32(0), u64(0), u32(0), u32(0))), undefined, payload), null);
  // any other opcode with writeData
  const ga = server.handle(head(GETATTR, bytes(u32(0), u32(0), u64(0)), payload.length), undefined, payload)!;
  assert.equal(ga.readInt32LE(4), -E.EINVAL);
});
