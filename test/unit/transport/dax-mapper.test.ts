// The daemon's DAX mapper (transport/dax-mapper.ts) over a real backend
// request channel (a socketpair, ShmemChannel) against a frontend that behaves
// like QEMU 11.1: it refuses a SHMEM_MAP that straddles the end of its file,
// refuses fds not opened read-write, removes only exact mappings, and really
// mmaps what it accepts into a reserved window. The frontend runs in the
// channel's wait hook, so the test stays on one thread.
// - a range straddling EOF is split: the part below EOF from the file, the
//   EOF page from a copy; the window shows the file byte for byte, zeros after;
// - the copy is coherent: guest stores reach the file, host writes and
//   truncation reach the copy (syncTails, which the worker runs around every request);
// - read-only maps of O_RDONLY fds go out as an O_RDWR reopen;
// - unmapping removes exactly the pieces sent; no fd is left behind;
// - the live-region budget: past it a map is refused (ENOSPC), nothing sent.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, fstatSync, ftruncateSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir, constants as osConstants } from 'node:os';
import { constants as fsConstants } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ChannelMapper, DAX_REGION_BUDGET, safeWindowSize } from '../../../src/transport/dax-mapper.ts';
import { ShmemChannel } from '../../../src/vhost-user/shmem.ts';
import { socketPair, UnixChannel, closeSocket, pollFd } from '../../../src/sys/unix-socket.ts';
import { fdStatusFlags } from '../../../src/sys/fd-flags.ts';
import { Window } from '../../../src/sys/window.ts';

const MiB = 1024 * 1024;
/** <fcntl.h> O_ACCMODE (node:fs has no constant for it). */
const O_ACCMODE = 3;
const WINDOW = 8 * MiB;
const dir = mkdtempSync(join(tmpdir(), 'dax-mapper-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const fdCount = () => readdirSync('/proc/self/fd').length;

/** QEMU 11.1's rules for SHMEM_MAP / SHMEM_UNMAP, with a real window. */
class QemuLikeFrontend {
  readonly win = Window.reserve(WINDOW);
  readonly ch: UnixChannel;
  readonly mapped = new Map<number, number>();
  readonly log: string[] = [];
  constructor(readonly fd: number) {
    this.ch = new UnixChannel(fd);
  }
  /** Answer every request waiting on the channel. */
  serve(): void {
    while (pollFd(this.fd, 0)) {
      const b = Buffer.alloc(52);
      const fds: number[] = [];
      let got = 0;
      while (got < 52) {
        const n = this.ch.recv(b, got, 52 - got, fds);
        if (n <= 0) return;
        got += n;
      }
      const request = b.readUInt32LE(0);
      const fdOffset = Number(b.readBigUInt64LE(20));
      const shm = Number(b.readBigUInt64LE(28));
      const len = Number(b.readBigUInt64LE(36));
      const rw = (b.readBigUInt64LE(44) & 1n) === 1n;
      let status = 0n;
      if (request === 9) {
        const fd = fds[0]!;
        const size = fstatSync(fd).size;
        if (size > fdOffset && size < fdOffset + len) {
          status = 1n;
          this.log.push(`refused straddle ${fdOffset}+${len} of ${size}`);
        } else if ((fdStatusFlags(fd) & O_ACCMODE) !== fsConstants.O_RDWR) {
          status = 1n;
          this.log.push('refused a read-only fd');
        } else {
          this.win.map(shm, len, fd, BigInt(fdOffset), rw);
          this.mapped.set(shm, len);
          this.log.push(`map ${shm}+${len} ${rw ? 'rw' : 'ro'}`);
        }
      } else if (request === 10) {
        if (this.mapped.get(shm) !== len) {
          status = 1n;
          this.log.push(`refused unmap ${shm}+${len}`);
        } else {
          this.win.unmap(shm, len);
          this.mapped.delete(shm);
          this.log.push(`unmap ${shm}+${len}`);
        }
      }
      for (const fd of fds) closeSync(fd);
      const r = Buffer.alloc(20);
      r.writeUInt32LE(request, 0);
      r.writeUInt32LE(0x1 | 0x4, 4);
      r.writeUInt32LE(8, 8);
      r.writeBigUInt64LE(status, 12);
      this.ch.send(r, 0, 20);
    }
  }
  bytes(off: number, len: number): Buffer {
    return Buffer.from(Buffer.from(this.win.mapping.view(off, len)));
  }
  store(off: number, data: Buffer): void {
    data.copy(Buffer.from(this.win.mapping.view(off, data.length)));
  }
  close(): void {
    this.win.close();
    closeSocket(this.fd);
  }
}

test('straddling EOF: split into the file part and a coherent copy of the EOF page; exact unmaps; no fd left', () => {
  const fds0 = fdCount();
  const [ours, theirs] = socketPair();
  const fe = new QemuLikeFrontend(theirs);
  const mapper = new ChannelMapper(WINDOW);
  mapper.setChannel(new ShmemChannel(ours, WINDOW, 5000, 0, () => fe.serve()));
  const path = join(dir, 'f.bin');
  const data = randomBytes(10_000);
  writeFileSync(path, data);
  try {
    // Read-only map of an O_RDONLY fd, straddling EOF (what Linux asks for a small file).
    const ro = openSync(path, 'r');
    mapper.map(ro, 0, 0, 2 * MiB, false);
    closeSync(ro);
    assert.equal(mapper.splitMode, true, 'switched to split mode after the refusal');
    assert.deepEqual(fe.log, ['refused straddle 0+2097152 of 10000', 'map 0+8192 ro', 'map 8192+4096 ro'], 'an O_RDWR reopen went out, split at the page below EOF');
    assert.ok(fe.bytes(0, 10_000).equals(data), 'the window shows the file');
    assert.ok(fe.bytes(10_000, 12288 - 10_000).equals(Buffer.alloc(12288 - 10_000)), 'zeros past EOF in the EOF page');
    assert.equal(mapper.tailPages, 1);

    // A writable map of the same file elsewhere: guest stores in the EOF page reach the file.
    const rw = openSync(path, 'r+');
    mapper.map(rw, 0, 2 * MiB, 2 * MiB, true);
    closeSync(rw);
    fe.store(2 * MiB + 9000, Buffer.from('guest wrote this'));
    mapper.syncTails();
    assert.equal(readFileSync(path).subarray(9000, 9016).toString(), 'guest wrote this', 'the store reached the file');
    assert.equal(fe.bytes(9000, 16).toString(), 'guest wrote this', 'and the read-only copy of the same page shows it too');
    // A host write to the last page, then a truncation inside it.
    const h = openSync(path, 'r+');
    writeSync(h, Buffer.from('HOST'), 0, 4, 9500);
    mapper.syncTails();
    assert.equal(fe.bytes(2 * MiB + 9500, 4).toString(), 'HOST');
    ftruncateSync(h, 8500);
    closeSync(h);
    mapper.syncTails();
    assert.ok(fe.bytes(8500, 12288 - 8500).equals(Buffer.alloc(12288 - 8500)), 'bytes past the new EOF read as zeros');
    assert.ok(fe.bytes(0, 8500).equals(readFileSync(path)), 'the rest still equals the file');

    // Unmapping removes exactly the pieces sent.
    fe.log.length = 0;
    mapper.unmap(0, 2 * MiB);
    mapper.unmap(2 * MiB, 2 * MiB);
    assert.deepEqual(fe.log, ['unmap 0+8192', 'unmap 8192+4096', `unmap ${2 * MiB}+8192`, `unmap ${2 * MiB + 8192}+4096`]);
    assert.equal(fe.mapped.size, 0);
    assert.equal(mapper.tailPages, 0);

    // A range wholly below EOF is never split.
    writeFileSync(path, randomBytes(4 * MiB));
    const big = openSync(path, 'r+');
    fe.log.length = 0;
    mapper.map(big, 0, 0, 2 * MiB, true);
    closeSync(big);
    assert.deepEqual(fe.log, [`map 0+${2 * MiB} rw`]);
    mapper.unmap(0, 2 * MiB);
  } finally {
    mapper.close();
    fe.close();
  }
  assert.equal(fdCount(), fds0, 'every fd (reopens, tail memfds, file dups, the channel) is closed');
});

test('a file that grows past its pieces is cut again: the new bytes show through the range the guest already has', () => {
  const fds0 = fdCount();
  const [ours, theirs] = socketPair();
  const fe = new QemuLikeFrontend(theirs);
  const mapper = new ChannelMapper(WINDOW);
  mapper.setChannel(new ShmemChannel(ours, WINDOW, 5000, 0, () => fe.serve()));
  const path = join(dir, 'grow.txt');
  writeFileSync(path, 'seventeen bytes!\n');
  try {
    const fd = openSync(path, 'r');
    mapper.map(fd, 0, 0, 2 * MiB, false);
    closeSync(fd);
    assert.deepEqual(fe.log.slice(1), ['map 0+4096 ro'], 'only the copied EOF page');
    assert.equal(fe.bytes(0, 17).toString(), 'seventeen bytes!\n');
    // The host appends: 17 -> 5052 bytes (the copy alone no longer covers it).
    const grown = Buffer.concat([Buffer.from('seventeen bytes!\n'), randomBytes(5035)]);
    writeFileSync(path, grown);
    fe.log.length = 0;
    mapper.syncTails();
    assert.deepEqual(fe.log, ['unmap 0+4096', 'map 0+4096 ro', 'map 4096+4096 ro'], 'cut again: a file page, then a copy of the new EOF page');
    assert.ok(fe.bytes(0, 5052).equals(grown), 'every byte, past the old EOF page too');
    // Growing within the same last page needs no new cut, only the refreshed copy.
    const more = Buffer.concat([grown, Buffer.from('tail')]);
    writeFileSync(path, more);
    fe.log.length = 0;
    mapper.syncTails();
    assert.deepEqual(fe.log, []);
    assert.ok(fe.bytes(0, 5056).equals(more));
    // Growing again: the file page already mapped stays (the guest may be reading it); only the copy is replaced.
    const larger = Buffer.concat([more, randomBytes(3 * 4096 + 10 - more.length)]);
    writeFileSync(path, larger);
    fe.log.length = 0;
    mapper.syncTails();
    assert.deepEqual(fe.log, ['unmap 4096+4096', 'map 4096+8192 ro', 'map 12288+4096 ro']);
    assert.ok(fe.bytes(0, larger.length).equals(larger));
    mapper.unmap(0, 2 * MiB);
    assert.equal(fe.mapped.size, 0);
  } finally {
    mapper.close();
    fe.close();
  }
  assert.equal(fdCount(), fds0, 'no fd left');
});

test('region budget: a map that would take the frontend past its region limit is refused with ENOSPC before anything is sent', () => {
  const fds0 = fdCount();
  const [ours, theirs] = socketPair();
  const fe = new QemuLikeFrontend(theirs);
  // QEMU 11.1 aborts past 512 regions; this frontend counts instead, with a
  // limit of 5 standing for what the budget leaves after guest RAM.
  const LIMIT = 5;
  let over = 0;
  const mapper = new ChannelMapper(WINDOW, () => {}, LIMIT);
  mapper.setChannel(new ShmemChannel(ours, WINDOW, 5000, 0, () => {
    fe.serve();
    if (fe.mapped.size > LIMIT) over++;
  }));
  const small = join(dir, 'small.txt'); // one page or less: only the EOF copy, 1 region
  const twoPiece = join(dir, 'two.bin'); // a whole page + part of one: 2 regions
  writeFileSync(small, 'tiny\n');
  writeFileSync(twoPiece, randomBytes(5000));
  const mapAt = (path: string, slot: number) => {
    const fd = openSync(path, 'r');
    try {
      mapper.map(fd, 0, slot * MiB, MiB, false);
    } finally {
      closeSync(fd);
    }
  };
  try {
    mapAt(twoPiece, 0); // the refused straddle turns split mode on, then 2 regions
    mapAt(twoPiece, 1);
    assert.equal(mapper.liveRegions, 4);
    fe.log.length = 0;
    assert.throws(() => mapAt(twoPiece, 2), (e: Error & { errno?: number }) => e.errno === osConstants.errno.ENOSPC && /no room for 2 more/.test(e.message));
    assert.deepEqual(fe.log, [], 'nothing was sent for the refused map');
    mapAt(small, 3); // one region still fits
    assert.equal(mapper.liveRegions, 5);
    assert.throws(() => mapAt(small, 4), (e: Error & { errno?: number }) => e.errno === osConstants.errno.ENOSPC);
    // Unmapping gives the room back.
    mapper.unmap(0, MiB);
    assert.equal(mapper.liveRegions, 3);
    mapAt(twoPiece, 2);
    assert.equal(mapper.liveRegions, 5);
    // At the limit, a file that grows past its pieces keeps its old cut (the
    // new one needs one more region) instead of going over.
    writeFileSync(small, randomBytes(6000));
    fe.log.length = 0;
    mapper.syncTails();
    assert.deepEqual(fe.log, [], 'no re-cut over the budget');
    assert.equal(mapper.liveRegions, 5);
    mapper.unmap(MiB, MiB);
    mapper.syncTails(); // now there is room: cut again for 6000 bytes
    assert.equal(mapper.liveRegions, 4);
    assert.ok(fe.bytes(3 * MiB, 6000).equals(readFileSync(small)), 'the grown file shows through');
    assert.equal(over, 0, 'the frontend never held more than its limit');
    assert.equal(mapper.peakRegions, LIMIT);
    for (const slot of [2, 3]) mapper.unmap(slot * MiB, MiB);
    assert.equal(mapper.liveRegions, 0);
    assert.equal(fe.mapped.size, 0);
  } finally {
    mapper.close();
    fe.close();
  }
  assert.equal(fdCount(), fds0, 'no fd left');
});

test('the default budget: QEMU 11.1 limit minus our GET_MAX_MEM_SLOTS reply, and the window that never reaches it', () => {
  assert.equal(DAX_REGION_BUDGET, 512 - 32);
  assert.equal(safeWindowSize(), 480 * MiB, 'two regions per 2 MiB range at worst');
  assert.equal(new ChannelMapper(WINDOW).safeWindowSize, 480 * MiB);
});
