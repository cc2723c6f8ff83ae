// The per-run layer and its quoting, checked with the same busybox sh the
// guest runs (on the host), and the layer concatenation the kernel expects.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { findBusybox } from '../../../src/guest/assets.ts';
import { hasInterpreter } from '../../../src/guest/elf.ts';
import { buildRunLayer, concatLayers, shQuote } from '../../../src/guest/initramfs.ts';

const busybox = findBusybox();

test('shQuote survives busybox sh for hostile words', () => {
  const words = ["it's", '"double"', '$HOME', '`id`', '\\', '*', ' lead', 'new\nline', '', "''", 'ü€'];
  const out = execFileSync(busybox, ['sh', '-c', `printf '%s\\0' ${words.map(shQuote).join(' ')}`]);
  assert.deepEqual(out.toString('utf8').split('\0').slice(0, -1), words);
});

test('run.conf sources in busybox sh to exactly the values given', () => {
  const layer = buildRunLayer({ nonce: 'abc123', mode: 'root', tag: "t'ag", mountpoint: '/new root', mountOptions: 'dax=always', cwd: '/x', script: 'echo hi', ttySize: { rows: 40, cols: 100 } });
  // Pull run.conf back out with cpio and source it.
  const conf = execFileSync('cpio', ['-i', '--quiet', '--to-stdout', 'vft/run.conf'], { input: layer }).toString();
  const vars = ['VFT_NONCE', 'VFT_MODE', 'VFT_TAG', 'VFT_MOUNTPOINT', 'VFT_MOUNT_OPTS', 'VFT_CWD', 'VFT_STTY'];
  const out = execFileSync(busybox, ['sh', '-c', `${conf}\nprintf '%s\\n' ${vars.map((v) => `"$${v}"`).join(' ')}`], { encoding: 'utf8' });
  assert.deepEqual(out.split('\n').slice(0, -1), ['abc123', 'root', "t'ag", '/new root', 'dax=always', '/x', 'rows 40 cols 100']);
  const cmd = execFileSync('cpio', ['-i', '--quiet', '--to-stdout', 'vft/cmd'], { input: layer }).toString();
  assert.equal(cmd, 'echo hi\n');
});

test('bad tags and nonces are refused', () => {
  const base = { nonce: 'n', mode: 'exec' as const, mountpoint: '/mnt', cwd: '/mnt', script: 'true' };
  assert.throws(() => buildRunLayer({ ...base, tag: 'x'.repeat(37) }), /1\.\.36 bytes/);
  assert.throws(() => buildRunLayer({ ...base, tag: '' }), /1\.\.36 bytes/);
  assert.throws(() => buildRunLayer({ ...base, tag: 'ok', nonce: 'a;b' }), /alphanumeric/);
  assert.throws(() => buildRunLayer({ ...base, tag: 'ok', files: [{ path: 'rel', data: Buffer.alloc(1) }] }), /absolute/);
});

test('layers start on 4-byte boundaries', () => {
  const img = concatLayers([Buffer.from('abcde'), Buffer.from('xy'), Buffer.from('z')]);
  assert.deepEqual([...img], [...Buffer.from('abcde\0\0\0xy\0\0z\0\0\0')]);
});

test('the static busybox check tells static from dynamic', () => {
  assert.equal(hasInterpreter(readFileSync(busybox)), false);
  assert.equal(hasInterpreter(readFileSync(process.execPath)), true);
  assert.throws(() => hasInterpreter(Buffer.from('#!/bin/sh\n'.padEnd(80))), /not an ELF/);
});
