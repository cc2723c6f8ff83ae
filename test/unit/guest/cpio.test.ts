// The newc writer, read back by GNU cpio (an independent reader): names,
// contents, modes, symlinks, device nodes and padding at every length mod 4.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CpioWriter } from '../../../src/guest/cpio.ts';

const work = mkdtempSync(join(tmpdir(), 'vfts-cpio-'));
after(() => rmSync(work, { recursive: true, force: true }));

function list(archive: Buffer): string[] {
  return execFileSync('cpio', ['-t', '--quiet'], { input: archive, encoding: 'utf8' }).split('\n').filter(Boolean);
}

test('GNU cpio lists and extracts what we wrote', () => {
  const w = new CpioWriter();
  w.add({ kind: 'dir', path: 'd' });
  // Name and data lengths covering every remainder mod 4, so each padding case is read back.
  const files = [0, 1, 2, 3, 4, 5, 4097].map((n) => ({ path: `d/${'n'.repeat((n % 4) + 1)}${n}`, data: Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff)) }));
  for (const f of files) w.add({ kind: 'file', path: f.path, data: f.data, mode: 0o640 });
  w.add({ kind: 'file', path: 'd/exe', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 });
  w.add({ kind: 'symlink', path: 'd/link', target: '../somewhere/else' });
  w.addParents('a/b/c/file');
  w.add({ kind: 'file', path: 'a/b/c/file', data: Buffer.from('deep') });
  const archive = w.finish();
  assert.equal(archive.length % 4, 0);

  const names = list(archive);
  assert.deepEqual(names.sort(), ['a', 'a/b', 'a/b/c', 'a/b/c/file', 'd', 'd/exe', 'd/link', ...files.map((f) => f.path)].sort());

  const out = join(work, 'x');
  execFileSync('cpio', ['-id', '--quiet', '--no-absolute-filenames', '-D', out], { input: archive });
  for (const f of files) {
    assert.deepEqual(readFileSync(join(out, f.path)), f.data, f.path);
    assert.equal(lstatSync(join(out, f.path)).mode & 0o7777, 0o640);
  }
  assert.equal(lstatSync(join(out, 'd/exe')).mode & 0o7777, 0o755);
  assert.equal(readlinkSync(join(out, 'd/link')), '../somewhere/else');
  assert.equal(readFileSync(join(out, 'a/b/c/file'), 'utf8'), 'deep');
});

test('device nodes carry their numbers', () => {
  const w = new CpioWriter();
  w.add({ kind: 'chardev', path: 'console', major: 5, minor: 1 });
  const verbose = execFileSync('cpio', ['-tv', '--quiet'], { input: w.finish(), encoding: 'utf8' });
  assert.match(verbose, /^crw-------\s.*\s5,\s+1\s.*console$/m);
});

test('bad paths and duplicates are refused', () => {
  const w = new CpioWriter();
  w.add({ kind: 'dir', path: 'x' });
  assert.throws(() => w.add({ kind: 'dir', path: 'x' }), /duplicate/);
  assert.throws(() => w.add({ kind: 'file', path: '../etc/passwd', data: Buffer.alloc(0) }), /bad cpio path/);
  assert.throws(() => w.add({ kind: 'file', path: '', data: Buffer.alloc(0) }), /bad cpio path/);
});
