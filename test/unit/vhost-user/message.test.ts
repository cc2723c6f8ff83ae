// vhost-user wire structs against hand-annotated bytes from
// docs/interop/vhost-user.rst, both directions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  HEADER_SIZE, decodeHeader, encodeMessage, decodeVringAddr, encodeVringAddr, decodeMemTable, encodeMemTable,
  decodeSingleRegion, encodeSingleRegion, decodeVringState, encodeVringState, decodeConfig, encodeConfig,
  encodeVirtioFsConfig, requestName, Request, FLAG_NEED_REPLY,
} from '../../../src/vhost-user/message.ts';

const hex = (s: string) => Buffer.from(s.replace(/\s+|#[^\n]*/g, ''), 'hex');

test('header: u32 request, u32 flags, u32 size, little endian', () => {
  const b = encodeMessage(Request.SET_VRING_NUM, 1 | FLAG_NEED_REPLY, hex('01000000 00040000'));
  assert.deepEqual(b, hex(`
    08000000 # request 8 = SET_VRING_NUM
    09000000 # flags: version 1 | NEED_REPLY
    08000000 # size 8
    01000000 00040000 # vring 1, num 1024`));
  assert.deepEqual(decodeHeader(b), { request: 8, flags: 9, size: 8 });
  assert.equal(HEADER_SIZE, 12);
  assert.equal(requestName(21), 'SET_BACKEND_REQ_FD');
  assert.equal(requestName(999), 'request 999');
});

test('vring state and vring address', () => {
  const s = hex('02000000 ffff0000');
  assert.deepEqual(decodeVringState(s), { index: 2, num: 0xffff });
  assert.deepEqual(encodeVringState({ index: 2, num: 0xffff }), s);
  const a = hex(`
    01000000 00000000   # index 1, flags 0
    0010000000000000    # descriptor 0x1000
    0030000000000000    # used 0x3000
    0020000000000000    # available 0x2000
    0000000000000000    # log`);
  const d = decodeVringAddr(a);
  assert.deepEqual(d, { index: 1, flags: 0, descriptor: 0x1000n, used: 0x3000n, available: 0x2000n, log: 0n });
  assert.deepEqual(encodeVringAddr(d), a);
});

test('memory table: count, padding, then {gpa, size, uva, mmap_offset} per region; sizes must agree', () => {
  const t = hex(`
    02000000 00000000
    0000000000000000 00000a0000000000 00007f0000000000 0000000000000000
    0000100000000000 0000000001000000 00107f0000000000 00100000 00000000`); // 2nd: gpa 1 MiB, 4 GiB, uva 0x7f1000, offset 0x1000
  const regions = decodeMemTable(t)!;
  assert.equal(regions.length, 2);
  assert.deepEqual(regions[1], { guest_phys_addr: 0x100000n, memory_size: 0x1_0000_0000n, userspace_addr: 0x7f1000n, mmap_offset: 0x1000n });
  assert.deepEqual(encodeMemTable(regions), t);
  assert.equal(decodeMemTable(t.subarray(0, t.length - 1)), null, 'short table');
  const lying = Buffer.from(t);
  lying.writeUInt32LE(9, 0);
  assert.equal(decodeMemTable(lying), null, 'more than 8 regions');
  const single = Buffer.concat([Buffer.alloc(8), t.subarray(8, 40)]);
  assert.deepEqual(decodeSingleRegion(single), regions[0]);
  assert.deepEqual(encodeSingleRegion(regions[0]!), single);
});

test('config space and the virtio-fs config (tag[36], num_request_queues)', () => {
  const c = hex('00000000 2c000000 00000000');
  const full = Buffer.concat([c, Buffer.alloc(44)]);
  assert.deepEqual(decodeConfig(full)?.size, 44);
  assert.equal(decodeConfig(c), null, 'payload shorter than its size');
  const fs = encodeVirtioFsConfig('myfs', 1);
  assert.equal(fs.length, 44);
  assert.equal(fs.subarray(0, 5).toString('latin1'), 'myfs\0');
  assert.equal(fs.readUInt32LE(36), 1);
  assert.deepEqual(encodeConfig({ offset: 0, size: 44, flags: 0, payload: fs }).subarray(12), fs);
  assert.throws(() => encodeVirtioFsConfig('x'.repeat(37), 1), RangeError);
});

test('--print-capabilities and the shipped description file agree (vhost-user backend program conventions)', () => {
  const root = new URL('../../../', import.meta.url).pathname;
  const desc = JSON.parse(readFileSync(`${root}share/vhost-user/50-virtiofs-ts.json`, 'utf8')) as { type: string; binary: string; features: string[] };
  assert.equal(desc.type, 'fs');
  const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { bin: Record<string, string> };
  const name = desc.binary.split('/').pop()!;
  assert.ok(pkg.bin[name], `package.json installs ${name}`);
  const out = execFileSync(process.execPath, [`${root}${pkg.bin[name]}`, '--print-capabilities'], { encoding: 'utf8' });
  const caps = JSON.parse(out) as { type: string; features: string[] };
  assert.equal(caps.type, 'fs');
  assert.deepEqual(caps.features, desc.features);
});
