// VhostUserBackend's request handling against a recording device, without a
// socket: replies and acks are captured from a stub connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { VhostUserBackend, type VhostUserDevice } from '../../../src/vhost-user/backend.ts';
import type { Message, VhostUserConnection } from '../../../src/vhost-user/connection.ts';
import { VhostUserError } from '../../../src/vhost-user/errors.ts';
import type { MemoryRegion, VringAddr } from '../../../src/vhost-user/message.ts';
import { closeFd, eventfdCreate } from '../../../src/sys/eventfd.ts';

class Recorder implements VhostUserDevice {
  readonly numQueues = 2;
  readonly features = (1n << 32n) | (1n << 29n);
  readonly protocolFeatures = (1n << 3n) | (1n << 15n);
  readonly maxMemSlots = 32;
  calls: string[] = [];
  fail = false;
  private rec(s: string): Promise<void> {
    this.calls.push(s);
    return this.fail ? Promise.reject(new Error('device says no')) : Promise.resolve();
  }
  setFeatures(f: bigint) { return this.rec(`features ${f.toString(16)}`); }
  setMemTable(r: MemoryRegion[], fds: number[]) { return this.rec(`mem ${r.length} ${fds.length}`); }
  addMemRegion(_r: MemoryRegion, fd: number) { return this.rec(`add ${fd >= 0}`); }
  removeMemRegion() { return this.rec('remove'); }
  setVringNum(i: number, n: number) { return this.rec(`num ${i} ${n}`); }
  setVringAddr(i: number, a: VringAddr) { return this.rec(`addr ${i} ${a.descriptor}`); }
  setVringBase(i: number, b: number) { return this.rec(`base ${i} ${b}`); }
  async getVringBase(i: number) { await this.rec(`get-base ${i}`); return 7; }
  setVringKick(i: number, fd: number) { return this.rec(`kick ${i} ${fd >= 0 ? 'fd' : 'nofd'}`); }
  setVringCall(i: number, fd: number) { return this.rec(`call ${i} ${fd >= 0 ? 'fd' : 'nofd'}`); }
  setVringErr(i: number, fd: number) { return this.rec(`err ${i} ${fd >= 0 ? 'fd' : 'nofd'}`); }
  setVringEnable(i: number, on: boolean) { return this.rec(`enable ${i} ${on}`); }
  setBackendReqFd() { return this.rec('backend-req'); }
  reset() { return this.rec('reset'); }
}

function harness() {
  const dev = new Recorder();
  const replies: { request: number; payload: Buffer }[] = [];
  const conn = { reply: (request: number, payload: Buffer) => replies.push({ request, payload: Buffer.from(payload) }) } as unknown as VhostUserConnection;
  const be = new VhostUserBackend(dev);
  const send = (request: number, payload: Buffer = Buffer.alloc(0), flags = 1, fds: number[] = []) =>
    be.dispatch(conn, { request, flags, payload, fds } satisfies Message);
  const u64 = (v: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(v); return b; };
  const state = (i: number, n: number) => { const b = Buffer.alloc(8); b.writeUInt32LE(i, 0); b.writeUInt32LE(n, 4); return b; };
  return { dev, replies, send, u64, state };
}

test('GET_FEATURES adds VHOST_USER_F_PROTOCOL_FEATURES; unknown features and protocol features are refused', async () => {
  const { dev, replies, send, u64 } = harness();
  await send(1);
  assert.equal(replies[0]!.payload.readBigUInt64LE(0), (1n << 32n) | (1n << 30n) | (1n << 29n));
  await send(2, u64(1n << 5n)); // never offered: refused, no ack (REPLY_ACK not negotiated)
  assert.deepEqual(dev.calls, []);
  assert.equal(replies.length, 1, 'no ack without REPLY_ACK, even with NEED_REPLY');
  await send(16, u64(1n << 9n)); // CONFIG was not offered
  await send(16, u64(1n << 3n));
  await send(2, u64(1n << 5n), 1 | 8);
  assert.equal(replies.at(-1)!.payload.readBigUInt64LE(0), 1n, 'refusal acked once REPLY_ACK is negotiated');
  await send(2, u64(1n << 32n), 1 | 8);
  assert.equal(replies.at(-1)!.payload.readBigUInt64LE(0), 0n);
  assert.deepEqual(dev.calls, ['features 100000000']);
});

test('without PROTOCOL_FEATURES a ring starts enabled at SET_VRING_KICK; with it, it waits for SET_VRING_ENABLE', async () => {
  const a = harness();
  await a.send(12, a.u64(1n | 0x100n)); // kick ring 1, no fd (polling)
  assert.deepEqual(a.dev.calls, ['enable 1 true', 'kick 1 nofd']);
  const b = harness();
  await b.send(2, b.u64((1n << 32n) | (1n << 30n)));
  await b.send(12, b.u64(1n | 0x100n));
  assert.deepEqual(b.dev.calls, ['features 140000000', 'kick 1 nofd']);
});

test('fds: a request that needs one refuses without it; refused requests close stray fds, handed-over fds stay with the device', async () => {
  const { dev, send, u64 } = harness();
  await send(13, u64(0n)); // SET_VRING_CALL without fd and without the no-fd bit
  assert.deepEqual(dev.calls, []);
  const fd = eventfdCreate();
  assert.ok(existsSync(`/proc/self/fd/${fd}`));
  await send(3, Buffer.alloc(0), 1, [fd]); // SET_OWNER takes no fd
  assert.equal(existsSync(`/proc/self/fd/${fd}`), false, 'the stray fd was closed');
  const t = Buffer.alloc(8 + 32);
  t.writeUInt32LE(1, 0);
  t.writeBigUInt64LE(4096n, 16);
  const fd2 = eventfdCreate();
  dev.fail = true;
  await send(5, t, 1, [fd2]);
  assert.deepEqual(dev.calls, ['mem 1 1']);
  // Handed over, the fd is the device's to close, even when the device fails:
  // the backend must not close it a second time (it may be reused already).
  assert.equal(existsSync(`/proc/self/fd/${fd2}`), true, 'the backend left the fd to the device');
  closeFd(fd2);
});

test('a request that owes a reply but fails ends the connection (fatal), naming the request', async () => {
  const { send, state } = harness();
  await assert.rejects(send(11, state(5, 0)), (e: unknown) => e instanceof VhostUserError && e.fatal && /GET_VRING_BASE/.test(e.message));
  await assert.rejects(send(24, Buffer.alloc(12)), (e: unknown) => e instanceof VhostUserError && e.fatal);
});

test('GET_VRING_BASE answers {index, base}; ADD_MEM_REG needs CONFIGURE_MEM_SLOTS', async () => {
  const { dev, replies, send, state, u64 } = harness();
  await send(11, state(1, 0));
  assert.deepEqual([replies[0]!.payload.readUInt32LE(0), replies[0]!.payload.readUInt32LE(4)], [1, 7]);
  const fd = eventfdCreate();
  await send(37, Buffer.alloc(40), 1, [fd]);
  assert.deepEqual(dev.calls, ['get-base 1']);
  assert.equal(existsSync(`/proc/self/fd/${fd}`), false);
  await send(16, u64(1n << 15n));
  const fd3 = eventfdCreate();
  const reg = Buffer.alloc(40);
  reg.writeBigUInt64LE(4096n, 16);
  await send(37, reg, 1, [fd3]);
  assert.deepEqual(dev.calls, ['get-base 1', 'add true']);
});
