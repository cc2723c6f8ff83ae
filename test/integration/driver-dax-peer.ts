// Test peer (run as a CHILD process): a small scripted vhost-user-fs backend
// that serves a directory's top-level regular files READ-ONLY and answers
// FUSE_SETUPMAPPING by asking the frontend to map the file into the DAX window
// (VHOST_USER_BACKEND_SHMEM_MAP with the file's fd) -- the daemon half of DAX
// that our real daemon does not have yet -- plus hostile modes that lie to
// the driver. The device side reuses the project's DeviceQueue/Chain (so the
// rings are real); the FUSE side is written by hand from fuse.h.
//
//   node --import tsx driver-dax-peer.ts SOCKET DIR MODE
// MODE: good | map-outside | map-nofd | map-eventfd | ack-no-map | lie-unique | lie-length
import { closeSync, fstatSync, openSync, readSync, readdirSync, lstatSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import { acceptUnix, listenUnix, pollFd, UnixChannel } from '../../src/sys/unix-socket.ts';
import { eventfdCreate, eventfdDrain, eventfdSignal } from '../../src/sys/eventfd.ts';
import { mapFd } from '../../src/sys/mmap.ts';
import { Epoll } from '../../src/sys/epoll.ts';
import { VhostUserConnection } from '../../src/vhost-user/connection.ts';
import { GuestMemory } from '../../src/virtio/memory.ts';
import { DeviceQueue } from '../../src/virtio/device-queue.ts';
import { Chain } from '../../src/virtio/chain.ts';
import {
  ATTR_OUT_SIZE, ENTRY_OUT_SIZE, INIT_OUT_SIZE, OPEN_OUT_SIZE, Opcode,
  FUSE_MAP_ALIGNMENT, FUSE_BIG_WRITES, FUSE_MAX_PAGES,
  encodeAttrOut, encodeEntryOut, encodeInitOut, encodeOpenOut, decodeReadIn, decodeSetupmappingIn,
} from '../../src/fuse/abi.ts';

const [sock, dir, mode = 'good'] = process.argv.slice(2) as [string, string, string];
const E = constants.errno;
const PROTOCOL_F_SHMEM = 22n;

const lfd = listenUnix(sock);
const cfd = acceptUnix(lfd);
const conn = new VhostUserConnection(cfd);
let mem: GuestMemory | null = null;
const queues = [new DeviceQueue(), new DeviceQueue()];
const kick: number[] = [-1, -1];
const call: number[] = [-1, -1];
let backendCh: UnixChannel | null = null;
let backendFd = -1;
const ep = new Epoll();
ep.add(cfd, 100);

// ---- FUSE state: nodeid = index+2 into the directory's regular files ----
const names = readdirSync(dir).filter((n) => lstatSync(join(dir, n)).isFile()).sort();
const fhs = new Map<number, number>();
let nextFh = 10;

function attrOf(st: Stats, nodeid: number) {
  const s = (ms: number) => Math.floor(ms / 1000);
  return {
    ino: nodeid, size: st.size, blocks: st.blocks, atime: s(st.atimeMs), mtime: s(st.mtimeMs), ctime: s(st.ctimeMs),
    atimensec: 0, mtimensec: 0, ctimensec: 0, mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, rdev: 0, blksize: 4096, flags: 0,
  };
}
const rootStat = () => lstatSync(dir);
const pathOf = (nodeid: number) => (nodeid === 1 ? dir : join(dir, names[nodeid - 2] ?? '\0'));

function shmemMap(fd: number | null, foffset: number, moffset: number, len: number): bigint {
  if (!backendCh) return BigInt(E.ENOSYS);
  const b = Buffer.alloc(12 + 40);
  b.writeUInt32LE(9, 0); // SHMEM_MAP
  b.writeUInt32LE(1 | 0x8, 4); // version 1, NEED_REPLY
  b.writeUInt32LE(40, 8);
  b[12] = 0;
  b.writeBigUInt64LE(BigInt(foffset), 20);
  b.writeBigUInt64LE(BigInt(moffset), 28);
  b.writeBigUInt64LE(BigInt(len), 36);
  b.writeBigUInt64LE(0n, 44);
  backendCh.send(b, 0, b.length, fd === null ? [] : [fd]);
  if (!pollFd(backendFd, 5000)) return 999n;
  const r = Buffer.alloc(20);
  let got = 0;
  while (got < 20) {
    const n = backendCh.recv(r, got, 20 - got, []);
    if (n <= 0) return 998n;
    got += n;
  }
  return r.readBigUInt64LE(12);
}

/** Returns [error, body] for one FUSE request. */
function fuse(req: Buffer): [number, Buffer] | null {
  const opcode = req.readUInt32LE(4);
  const nodeid = Number(req.readBigUInt64LE(16));
  const arg = req.subarray(40);
  switch (opcode) {
    case Opcode.INIT: {
      const b = Buffer.alloc(INIT_OUT_SIZE);
      encodeInitOut({ major: 7, minor: 38, max_readahead: 1 << 20, flags: Number(FUSE_MAP_ALIGNMENT | FUSE_BIG_WRITES | FUSE_MAX_PAGES), max_background: 16,
        congestion_threshold: 12, max_write: 1 << 20, time_gran: 1, max_pages: 256, map_alignment: 12, flags2: 0, unused: [] }, b);
      return [0, b];
    }
    case Opcode.LOOKUP: {
      const name = arg.subarray(0, arg.indexOf(0)).toString();
      const i = nodeid === 1 ? names.indexOf(name) : -1;
      if (i < 0) return [-E.ENOENT, Buffer.alloc(0)];
      const b = Buffer.alloc(ENTRY_OUT_SIZE);
      encodeEntryOut({ nodeid: i + 2, generation: 0, entry_valid: 60, attr_valid: 60, entry_valid_nsec: 0, attr_valid_nsec: 0, attr: attrOf(lstatSync(pathOf(i + 2)), i + 2) }, b);
      return [0, b];
    }
    case Opcode.GETATTR: {
      if (nodeid !== 1 && !names[nodeid - 2]) return [-E.ENOENT, Buffer.alloc(0)];
      const b = Buffer.alloc(ATTR_OUT_SIZE);
      encodeAttrOut({ attr_valid: 60, attr_valid_nsec: 0, dummy: 0, attr: attrOf(nodeid === 1 ? rootStat() : lstatSync(pathOf(nodeid)), nodeid) }, b);
      return [0, b];
    }
    case Opcode.OPEN: {
      if (!names[nodeid - 2]) return [-E.ENOENT, Buffer.alloc(0)];
      const fh = nextFh++;
      fhs.set(fh, openSync(pathOf(nodeid), 'r'));
      const b = Buffer.alloc(OPEN_OUT_SIZE);
      encodeOpenOut({ fh, open_flags: 0, padding: 0 }, b);
      return [0, b];
    }
    case Opcode.READ: {
      const r = decodeReadIn(arg);
      const fd = fhs.get(r.fh);
      if (fd === undefined) return [-E.EBADF, Buffer.alloc(0)];
      const b = Buffer.alloc(r.size);
      const n = readSync(fd, b, 0, r.size, r.offset);
      return [0, b.subarray(0, n)];
    }
    case Opcode.FLUSH: return [0, Buffer.alloc(0)];
    case Opcode.RELEASE: {
      const fh = Number(arg.readBigUInt64LE(0));
      const fd = fhs.get(fh);
      if (fd !== undefined) closeSync(fd);
      fhs.delete(fh);
      return [0, Buffer.alloc(0)];
    }
    case Opcode.FORGET: case Opcode.BATCH_FORGET: return null;
    case Opcode.SETUPMAPPING: {
      const m = decodeSetupmappingIn(arg);
      const fd = fhs.get(m.fh);
      if (fd === undefined) return [-E.EBADF, Buffer.alloc(0)];
      if (mode === 'ack-no-map') return [0, Buffer.alloc(0)];
      let status: bigint;
      if (mode === 'map-outside') status = shmemMap(fd, m.foffset, m.moffset + 1024 * 1024 * 1024, m.len);
      else if (mode === 'map-nofd') status = shmemMap(null, m.foffset, m.moffset, m.len);
      else if (mode === 'map-eventfd') status = shmemMap(eventfdCreate(), m.foffset, m.moffset, m.len); // not mappable: ENODEV
      else status = shmemMap(fd, m.foffset, m.moffset, m.len);
      process.stderr.write(`SETUPMAPPING ${m.foffset}+${m.len}@${m.moffset}: status ${status}\n`);
      return [status === 0n ? 0 : -E.EINVAL, Buffer.alloc(0)];
    }
    default: return [-E.ENOSYS, Buffer.alloc(0)];
  }
}

const chain = new Chain();
const reqBuf = Buffer.alloc(2 << 20);
function serveQueue(q: number): void {
  if (!mem) return;
  const dq = queues[q]!;
  let any = false;
  while (dq.pop(mem, chain)) {
    const n = chain.gather(mem, reqBuf);
    const req = reqBuf.subarray(0, n);
    const unique = req.readBigUInt64LE(8);
    const opcode = req.readUInt32LE(4);
    const r = fuse(req);
    let written = 0;
    if (r) {
      const [error, body] = r;
      const out = Buffer.alloc(16 + body.length);
      out.writeUInt32LE(out.length, 0);
      out.writeInt32LE(error, 4);
      out.writeBigUInt64LE(unique, 8);
      body.copy(out, 16);
      if (opcode === Opcode.READ && mode === 'lie-unique') out.writeBigUInt64LE(unique + 2n, 8);
      if (opcode === Opcode.READ && mode === 'lie-length') out.writeUInt32LE(out.length + 4096, 0);
      written = chain.scatter(mem, out, out.length);
    }
    dq.pushUsed(mem, chain.head, written);
    any = true;
  }
  if (any) eventfdSignal(call[q]!);
}

function ack(m: { flags: number; request: number }, v = 0n): void {
  if (m.flags & 0x8) {
    const p = Buffer.alloc(8);
    p.writeBigUInt64LE(v);
    conn.reply(m.request, p);
  }
}

let protocol = 0n;
for (;;) {
  const n = ep.wait(-1);
  for (let i = 0; i < n; i++) {
    const tok = ep.tokens[i]!;
    if (tok === 0 || tok === 1) {
      eventfdDrain(kick[tok]!);
      serveQueue(tok);
      continue;
    }
    let m;
    try {
      m = conn.tryRead();
    } catch {
      process.exit(0); // frontend gone
    }
    if (!m) continue;
    const u64 = () => m.payload.readBigUInt64LE(0);
    const idx = () => m.payload.readUInt32LE(0);
    switch (m.request) {
      case 1: { const p = Buffer.alloc(8); p.writeBigUInt64LE((1n << 32n) | (1n << 30n)); conn.reply(1, p); break; }
      case 15: { const p = Buffer.alloc(8); p.writeBigUInt64LE((1n << 3n) | (1n << 5n) | (1n << 10n) | (1n << PROTOCOL_F_SHMEM)); conn.reply(15, p); break; }
      case 16: protocol = u64(); break;
      case 21: backendFd = m.fds[0]!; backendCh = new UnixChannel(backendFd); ack(m); break;
      case 5: {
        const nreg = m.payload.readUInt32LE(0);
        const specs = [];
        for (let r = 0; r < nreg; r++) {
          const o = 8 + 32 * r;
          const size = Number(m.payload.readBigUInt64LE(o + 8));
          const map = mapFd(m.fds[r]!, size, m.payload.readBigUInt64LE(o + 24));
          specs.push({ guestPhysAddr: Number(m.payload.readBigUInt64LE(o)), userAddr: Number(m.payload.readBigUInt64LE(o + 16)), buffer: map.buffer, size });
        }
        mem = new GuestMemory(specs);
        ack(m);
        break;
      }
      case 8: queues[idx()]!.setSize(m.payload.readUInt32LE(4)); ack(m); break;
      case 9: {
        const q = idx();
        queues[q]!.setAddresses({ desc: Number(m.payload.readBigUInt64LE(8)), used: Number(m.payload.readBigUInt64LE(16)), avail: Number(m.payload.readBigUInt64LE(24)) });
        ack(m);
        break;
      }
      case 10: queues[idx()]!.setBase(m.payload.readUInt32LE(4)); ack(m); break;
      case 12: { const q = Number(u64() & 0xffn); kick[q] = m.fds[0]!; ep.add(kick[q]!, q); ack(m); break; }
      case 13: { const q = Number(u64() & 0xffn); call[q] = m.fds[0]!; ack(m); break; }
      default: ack(m); break;
    }
    void protocol;
  }
}
