// The DAX window reservation (src/sys/window.ts) with real memfds: file pages
// appear at the asked offsets, a later mapping over an earlier one replaces
// it and a partial overlap splits it (virtio-fs window semantics), unmapping
// puts no-access pages back, and nothing outside the reservation is accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeSync } from 'node:fs';
import { constants } from 'node:os';
import { Window } from '../../../src/sys/window.ts';
import { memfdCreate } from '../../../src/sys/mmap.ts';
import { closeFd, eventfdCreate } from '../../../src/sys/eventfd.ts';

const P = 4096;
function memfdFilled(byte: number, pages: number): number {
  const fd = memfdCreate('dax-window-test', pages * P);
  writeSync(fd, Buffer.alloc(pages * P, byte), 0, pages * P, 0);
  return fd;
}

test('maps, replaces, splits and unmaps at fixed offsets inside the window', () => {
  const w = Window.reserve(16 * P);
  const view = Buffer.from(w.mapping.buffer);
  const a = memfdFilled(0xaa, 4);
  const b = memfdFilled(0xbb, 4);
  try {
    w.map(0, 4 * P, a, 0n, false);
    assert.equal(view[0], 0xaa);
    assert.equal(view[4 * P - 1], 0xaa);
    w.map(2 * P, 4 * P, b, 0n, false); // overlaps the second half of a
    assert.equal(view[P], 0xaa, 'the untouched part of the first mapping stays');
    assert.equal(view[2 * P], 0xbb, 'the overlap now shows the new file');
    assert.equal(view[6 * P - 1], 0xbb);
    w.map(8 * P, P, b, BigInt(3 * P), false); // a file offset
    assert.equal(view[8 * P], 0xbb);
    // A host-side write is visible through the shared mapping at once.
    writeSync(a, Buffer.from([0x11]), 0, 1, 5);
    assert.equal(view[5], 0x11);
    w.unmap(0, 8 * P);
  } finally {
    closeFd(a);
    closeFd(b);
  }
  w.close();
});

test('refuses ranges outside the window, misaligned ranges and fds that cannot be mapped', () => {
  const w = Window.reserve(8 * P);
  const a = memfdFilled(1, 2);
  const efd = eventfdCreate();
  try {
    assert.throws(() => w.map(8 * P, P, a, 0n, false), (e: { errno?: number }) => e.errno === constants.errno.EINVAL);
    assert.throws(() => w.map(4 * P, 8 * P, a, 0n, false), /inside the/);
    assert.throws(() => w.map(-P, P, a, 0n, false), /inside the/);
    assert.throws(() => w.map(100, P, a, 0n, false), /page-aligned/);
    assert.throws(() => w.map(0, P, a, 100n, false), /page-aligned/);
    assert.throws(() => w.map(0, P, efd, 0n, false), (e: { errno?: number }) => e.errno === constants.errno.ENODEV, 'ENODEV for an eventfd');
    assert.throws(() => w.unmap(8 * P, P), /inside the/);
    assert.throws(() => Window.reserve(1000), /multiple of/);
  } finally {
    closeFd(a);
    closeFd(efd);
    w.close();
  }
  assert.throws(() => w.map(0, P, 0, 0n, false), /closed/);
});
