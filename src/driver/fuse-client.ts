// Layer: driver. The raw FUSE client: one method per opcode, speaking the
// wire format through fuse/abi.ts's encoders/decoders, over any
// FuseTransport (virtio-fs queues in production). Imports fuse/abi.ts,
// fuse/errors.ts and ./errors.ts only.
//
// Contracts:
// - Every successful LOOKUP, CREATE, MKNOD, MKDIR, SYMLINK, LINK (and each
//   READDIRPLUS entry with a nodeid) adds one to the backend's lookup count
//   of that node; the caller owns those counts and gives them back with
//   forget(). This client does no counting itself (vfs.ts does).
// - Names go out exactly as given (bytes + NUL): this is the tool for
//   hostile-guest tests, so nothing is cleaned up here.
// - A reply whose unique differs from the request's, whose header length
//   lies, or whose error is out of range fails the call with EPROTO.
import {
  ACCESS_IN_SIZE,
  ATTR_OUT_SIZE,
  CREATE_IN_SIZE,
  ENTRY_OUT_SIZE,
  FLUSH_IN_SIZE,
  FORGET_IN_SIZE,
  FORGET_ONE_SIZE,
  BATCH_FORGET_IN_SIZE,
  FSYNC_IN_SIZE,
  FUSE_ASYNC_READ,
  FUSE_BIG_WRITES,
  FUSE_DO_READDIRPLUS,
  FUSE_INIT_EXT,
  FUSE_KERNEL_MINOR_VERSION,
  FUSE_KERNEL_VERSION,
  FUSE_MAP_ALIGNMENT,
  FUSE_MAX_PAGES,
  FUSE_PARALLEL_DIROPS,
  FUSE_ROOT_ID,
  GETATTR_IN_SIZE,
  INIT_IN_SIZE,
  INIT_OUT_SIZE,
  IN_HEADER_SIZE,
  LINK_IN_SIZE,
  MKDIR_IN_SIZE,
  MKNOD_IN_SIZE,
  OPEN_IN_SIZE,
  OPEN_OUT_SIZE,
  OUT_HEADER_SIZE,
  Opcode,
  READ_IN_SIZE,
  RELEASE_IN_SIZE,
  REMOVEMAPPING_IN_SIZE,
  REMOVEMAPPING_ONE_SIZE,
  RENAME2_IN_SIZE,
  RENAME_IN_SIZE,
  SETATTR_IN_SIZE,
  SETUPMAPPING_IN_SIZE,
  STATFS_OUT_SIZE,
  WRITE_IN_SIZE,
  WRITE_OUT_SIZE,
  FATTR_ATIME,
  FATTR_FH,
  FATTR_GID,
  FATTR_MODE,
  FATTR_MTIME,
  FATTR_SIZE,
  FATTR_UID,
  decodeAttrOut,
  decodeEntryOut,
  decodeInitOut,
  decodeOpenOut,
  decodeStatfsOut,
  decodeWriteOut,
  encodeAccessIn,
  encodeCreateIn,
  encodeFlushIn,
  encodeForgetIn,
  encodeForgetOne,
  encodeBatchForgetIn,
  encodeFsyncIn,
  encodeGetattrIn,
  encodeInHeader,
  encodeInitIn,
  encodeLinkIn,
  encodeMkdirIn,
  encodeMknodIn,
  encodeOpenIn,
  encodeReadIn,
  encodeReleaseIn,
  encodeRemovemappingIn,
  encodeRemovemappingOne,
  encodeRename2In,
  encodeRenameIn,
  encodeSetattrIn,
  encodeSetupmappingIn,
  encodeWriteIn,
  joinInitFlags,
  opcodeName,
  readDirentplus,
  readDirents,
  splitInitFlags,
  type AttrOut,
  type DirentRecord,
  type DirentplusRecord,
  type EntryOut,
  type OpenOut,
  type StatfsOut,
} from '../fuse/abi.ts';
import { DriverError } from './errors.ts';

export type QueueName = 'request' | 'hiprio';

/** What the client needs from a transport: send bytes, get the reply bytes. */
export interface FuseTransport {
  /**
   * Send one request (`parts` concatenated) on `queue` with room for
   * `replyCap` reply bytes (0: no reply expected, e.g. FORGET). Resolves with
   * the bytes the device wrote; rejects on timeout or when the backend is gone.
   */
  call(queue: QueueName, parts: readonly Buffer[], replyCap: number, timeoutMs: number): Promise<Buffer>;
  /** Largest request + reply one call can carry. */
  readonly maxRequestBytes: number;
  close(): void;
}

export interface InitInfo {
  major: number;
  minor: number;
  flags: bigint;
  maxWrite: number;
  maxReadahead: number;
  maxPages: number;
  /** log2 of the DAX mapping alignment (0 when FUSE_MAP_ALIGNMENT was not granted). */
  mapAlignmentLog2: number;
}

export interface SetattrValues {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** Seconds (fractions kept to the nanosecond). */
  atime?: number;
  mtime?: number;
  fh?: number;
}

export interface FuseClientOptions {
  /** Per-request timeout. Default 30 s. */
  timeoutMs?: number;
  uid?: number;
  gid?: number;
  pid?: number;
}

/** Reply room for ops whose reply is a fixed struct or small. */
const SMALL_REPLY = 4096;

export class FuseClient {
  private nextUnique = 1n;
  readonly timeoutMs: number;
  private readonly uid: number;
  private readonly gid: number;
  private readonly pid: number;
  info: InitInfo | null = null;
  /** Requests sent so far (start-up traces and tests count round trips with it). */
  requestCount = 0;

  constructor(readonly transport: FuseTransport, opts: FuseClientOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.uid = opts.uid ?? process.getuid?.() ?? 0;
    this.gid = opts.gid ?? process.getgid?.() ?? 0;
    this.pid = opts.pid ?? process.pid;
  }

  /** Largest READ/WRITE payload per request (after INIT). */
  get maxIo(): number {
    const limit = Math.min(this.info?.maxWrite ?? 128 * 1024, this.transport.maxRequestBytes - 4096);
    return Math.max(4096, Math.min(limit, 1024 * 1024));
  }

  private header(opcode: Opcode, nodeid: number, bodyLen: number): { h: Buffer; unique: bigint } {
    const unique = this.nextUnique;
    this.nextUnique += 2n; // even numbers only: odd uniques are INTERRUPT's (fuse.h)
    const h = Buffer.allocUnsafe(IN_HEADER_SIZE);
    encodeInHeader({ len: IN_HEADER_SIZE + bodyLen, opcode, unique, nodeid, uid: this.uid, gid: this.gid, pid: this.pid, total_extlen: 0, padding: 0 }, h);
    return { h, unique };
  }

  /** Send a request and return the reply body (after fuse_out_header); throws DriverError on -errno. */
  async request(opcode: Opcode, nodeid: number, args: readonly Buffer[], replyCap = SMALL_REPLY): Promise<Buffer> {
    const bodyLen = args.reduce((n, a) => n + a.length, 0);
    const { h, unique } = this.header(opcode, nodeid, bodyLen);
    const name = opcodeName(opcode);
    this.requestCount++;
    const reply = await this.transport.call('request', [h, ...args], OUT_HEADER_SIZE + replyCap, this.timeoutMs);
    if (reply.length < OUT_HEADER_SIZE) throw new DriverError('EPROTO', `${name}: reply of ${reply.length} bytes is shorter than fuse_out_header`, name.toLowerCase());
    const len = reply.readUInt32LE(0);
    const error = reply.readInt32LE(4);
    const gotUnique = reply.readBigUInt64LE(8);
    if (gotUnique !== unique) throw new DriverError('EPROTO', `${name}: reply carries unique ${gotUnique}, request was ${unique}`, name.toLowerCase());
    if (len !== reply.length) throw new DriverError('EPROTO', `${name}: fuse_out_header.len ${len} but the device wrote ${reply.length} bytes`, name.toLowerCase());
    if (error > 0 || error < -4095) throw new DriverError('EPROTO', `${name}: reply error ${error} is not a negative errno`, name.toLowerCase());
    if (error < 0) {
      if (len !== OUT_HEADER_SIZE) throw new DriverError('EPROTO', `${name}: error reply with a ${len - OUT_HEADER_SIZE}-byte body`, name.toLowerCase());
      throw DriverError.fromErrno(-error, name.toLowerCase());
    }
    return reply.subarray(OUT_HEADER_SIZE);
  }

  /** One-way message on the hiprio queue (FORGET, BATCH_FORGET): no reply. */
  private async oneWay(opcode: Opcode, nodeid: number, args: readonly Buffer[]): Promise<void> {
    const bodyLen = args.reduce((n, a) => n + a.length, 0);
    const { h } = this.header(opcode, nodeid, bodyLen);
    await this.transport.call('hiprio', [h, ...args], 0, this.timeoutMs);
  }

  private static need(body: Buffer, size: number, op: string): Buffer {
    if (body.length < size) throw new DriverError('EPROTO', `${op}: reply body of ${body.length} bytes, expected ${size}`, op);
    return body;
  }

  private static name(n: string | Buffer): Buffer {
    const b = typeof n === 'string' ? Buffer.from(n, 'utf8') : n;
    return Buffer.concat([b, Buffer.alloc(1)]);
  }

  private static struct(size: number, fill: (b: Buffer) => void): Buffer {
    const b = Buffer.alloc(size);
    fill(b);
    return b;
  }

  // ---- session -----------------------------------------------------------------

  /** FUSE_INIT. `dax`: ask for FUSE_MAP_ALIGNMENT (the backend then may serve SETUPMAPPING). */
  async init(opts: { dax?: boolean } = {}): Promise<InitInfo> {
    let want = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_MAX_PAGES | FUSE_PARALLEL_DIROPS | FUSE_INIT_EXT;
    if (opts.dax) want |= FUSE_MAP_ALIGNMENT;
    const { flags, flags2 } = splitInitFlags(want);
    const arg = FuseClient.struct(INIT_IN_SIZE, (b) =>
      encodeInitIn({ major: FUSE_KERNEL_VERSION, minor: FUSE_KERNEL_MINOR_VERSION, max_readahead: 1024 * 1024, flags, flags2, unused: [] }, b));
    const body = await this.request(Opcode.INIT, 0, [arg], INIT_OUT_SIZE);
    // Old backends send a shorter fuse_init_out; read what is there, zero the rest.
    const full = Buffer.alloc(INIT_OUT_SIZE);
    body.copy(full, 0, 0, Math.min(body.length, INIT_OUT_SIZE));
    if (body.length < 24) throw new DriverError('EPROTO', `INIT reply of ${body.length} bytes`, 'init');
    const out = decodeInitOut(full);
    if (out.major !== FUSE_KERNEL_VERSION) throw new DriverError('EPROTO', `backend speaks FUSE ${out.major}.${out.minor}, we need 7.x`, 'init');
    const granted = joinInitFlags(out.flags, (out.flags & Number(FUSE_INIT_EXT)) !== 0 ? out.flags2 : 0) & want;
    this.info = {
      major: out.major,
      minor: out.minor,
      flags: granted,
      maxWrite: out.max_write || 4096,
      maxReadahead: out.max_readahead,
      maxPages: out.max_pages,
      mapAlignmentLog2: (granted & FUSE_MAP_ALIGNMENT) !== 0n ? out.map_alignment : 0,
    };
    return this.info;
  }

  destroy(): Promise<Buffer> {
    return this.request(Opcode.DESTROY, 0, []);
  }

  // ---- names and nodes --------------------------------------------------------

  async lookup(parent: number, name: string | Buffer): Promise<EntryOut> {
    return decodeEntryOut(FuseClient.need(await this.request(Opcode.LOOKUP, parent, [FuseClient.name(name)]), ENTRY_OUT_SIZE, 'lookup'));
  }

  forget(nodeid: number, nlookup: number): Promise<void> {
    return this.oneWay(Opcode.FORGET, nodeid, [FuseClient.struct(FORGET_IN_SIZE, (b) => encodeForgetIn({ nlookup }, b))]);
  }

  batchForget(items: readonly { nodeid: number; nlookup: number }[]): Promise<void> {
    const head = FuseClient.struct(BATCH_FORGET_IN_SIZE, (b) => encodeBatchForgetIn({ count: items.length, dummy: 0 }, b));
    const list = Buffer.alloc(FORGET_ONE_SIZE * items.length);
    items.forEach((it, i) => encodeForgetOne(it, list, i * FORGET_ONE_SIZE));
    return this.oneWay(Opcode.BATCH_FORGET, 0, [head, list]);
  }

  async getattr(nodeid: number, fh?: number): Promise<AttrOut> {
    const arg = FuseClient.struct(GETATTR_IN_SIZE, (b) => encodeGetattrIn({ getattr_flags: fh === undefined ? 0 : 1, dummy: 0, fh: fh ?? 0 }, b));
    return decodeAttrOut(FuseClient.need(await this.request(Opcode.GETATTR, nodeid, [arg]), ATTR_OUT_SIZE, 'getattr'));
  }

  async setattr(nodeid: number, v: SetattrValues): Promise<AttrOut> {
    let valid = 0;
    if (v.mode !== undefined) valid |= FATTR_MODE;
    if (v.uid !== undefined) valid |= FATTR_UID;
    if (v.gid !== undefined) valid |= FATTR_GID;
    if (v.size !== undefined) valid |= FATTR_SIZE;
    if (v.atime !== undefined) valid |= FATTR_ATIME;
    if (v.mtime !== undefined) valid |= FATTR_MTIME;
    if (v.fh !== undefined) valid |= FATTR_FH;
    const sec = (t: number | undefined) => (t === undefined ? 0 : Math.floor(t));
    const nsec = (t: number | undefined) => (t === undefined ? 0 : Math.round((t - Math.floor(t)) * 1e9) % 1e9);
    const arg = FuseClient.struct(SETATTR_IN_SIZE, (b) => encodeSetattrIn({
      valid, padding: 0, fh: v.fh ?? 0, size: v.size ?? 0, lock_owner: 0n,
      atime: sec(v.atime), mtime: sec(v.mtime), ctime: 0, atimensec: nsec(v.atime), mtimensec: nsec(v.mtime), ctimensec: 0,
      mode: v.mode ?? 0, unused4: 0, uid: v.uid ?? 0, gid: v.gid ?? 0, unused5: 0,
    }, b));
    return decodeAttrOut(FuseClient.need(await this.request(Opcode.SETATTR, nodeid, [arg]), ATTR_OUT_SIZE, 'setattr'));
  }

  readlink(nodeid: number): Promise<Buffer> {
    return this.request(Opcode.READLINK, nodeid, [], 4096).then((b) => Buffer.from(b));
  }

  async symlink(parent: number, name: string | Buffer, target: string | Buffer): Promise<EntryOut> {
    return decodeEntryOut(FuseClient.need(await this.request(Opcode.SYMLINK, parent, [FuseClient.name(name), FuseClient.name(target)]), ENTRY_OUT_SIZE, 'symlink'));
  }

  async mknod(parent: number, name: string | Buffer, mode: number, rdev = 0, umask = 0): Promise<EntryOut> {
    const arg = FuseClient.struct(MKNOD_IN_SIZE, (b) => encodeMknodIn({ mode, rdev, umask, padding: 0 }, b));
    return decodeEntryOut(FuseClient.need(await this.request(Opcode.MKNOD, parent, [arg, FuseClient.name(name)]), ENTRY_OUT_SIZE, 'mknod'));
  }

  async mkdir(parent: number, name: string | Buffer, mode: number, umask = 0): Promise<EntryOut> {
    const arg = FuseClient.struct(MKDIR_IN_SIZE, (b) => encodeMkdirIn({ mode, umask }, b));
    return decodeEntryOut(FuseClient.need(await this.request(Opcode.MKDIR, parent, [arg, FuseClient.name(name)]), ENTRY_OUT_SIZE, 'mkdir'));
  }

  async unlink(parent: number, name: string | Buffer): Promise<void> {
    await this.request(Opcode.UNLINK, parent, [FuseClient.name(name)]);
  }

  async rmdir(parent: number, name: string | Buffer): Promise<void> {
    await this.request(Opcode.RMDIR, parent, [FuseClient.name(name)]);
  }

  async rename(parent: number, name: string | Buffer, newParent: number, newName: string | Buffer, flags = 0): Promise<void> {
    if (flags === 0) {
      const arg = FuseClient.struct(RENAME_IN_SIZE, (b) => encodeRenameIn({ newdir: newParent }, b));
      await this.request(Opcode.RENAME, parent, [arg, FuseClient.name(name), FuseClient.name(newName)]);
    } else {
      const arg = FuseClient.struct(RENAME2_IN_SIZE, (b) => encodeRename2In({ newdir: newParent, flags, padding: 0 }, b));
      await this.request(Opcode.RENAME2, parent, [arg, FuseClient.name(name), FuseClient.name(newName)]);
    }
  }

  async link(nodeid: number, newParent: number, newName: string | Buffer): Promise<EntryOut> {
    const arg = FuseClient.struct(LINK_IN_SIZE, (b) => encodeLinkIn({ oldnodeid: nodeid }, b));
    return decodeEntryOut(FuseClient.need(await this.request(Opcode.LINK, newParent, [arg, FuseClient.name(newName)]), ENTRY_OUT_SIZE, 'link'));
  }

  async access(nodeid: number, mask: number): Promise<void> {
    await this.request(Opcode.ACCESS, nodeid, [FuseClient.struct(ACCESS_IN_SIZE, (b) => encodeAccessIn({ mask, padding: 0 }, b))]);
  }

  async statfs(nodeid = FUSE_ROOT_ID): Promise<StatfsOut> {
    return decodeStatfsOut(FuseClient.need(await this.request(Opcode.STATFS, nodeid, []), STATFS_OUT_SIZE, 'statfs'));
  }

  // ---- files ----------------------------------------------------------------------

  async open(nodeid: number, flags: number): Promise<OpenOut> {
    const arg = FuseClient.struct(OPEN_IN_SIZE, (b) => encodeOpenIn({ flags, open_flags: 0 }, b));
    return decodeOpenOut(FuseClient.need(await this.request(Opcode.OPEN, nodeid, [arg]), OPEN_OUT_SIZE, 'open'));
  }

  async create(parent: number, name: string | Buffer, flags: number, mode: number, umask = 0): Promise<{ entry: EntryOut; open: OpenOut }> {
    const arg = FuseClient.struct(CREATE_IN_SIZE, (b) => encodeCreateIn({ flags, mode, umask, open_flags: 0 }, b));
    const body = FuseClient.need(await this.request(Opcode.CREATE, parent, [arg, FuseClient.name(name)]), ENTRY_OUT_SIZE + OPEN_OUT_SIZE, 'create');
    return { entry: decodeEntryOut(body), open: decodeOpenOut(body, ENTRY_OUT_SIZE) };
  }

  /** READ: up to `size` bytes (short at EOF). size must be <= maxIo. */
  async read(nodeid: number, fh: number, offset: number, size: number): Promise<Buffer> {
    const arg = FuseClient.struct(READ_IN_SIZE, (b) => encodeReadIn({ fh, offset, size, read_flags: 0, lock_owner: 0n, flags: 0, padding: 0 }, b));
    const body = await this.request(Opcode.READ, nodeid, [arg], size);
    if (body.length > size) throw new DriverError('EPROTO', `read: ${body.length} bytes for a ${size}-byte read`, 'read');
    return body;
  }

  /** WRITE of data (<= maxIo bytes); returns the count the backend took. */
  async write(nodeid: number, fh: number, offset: number, data: Buffer, flags = 0): Promise<number> {
    const arg = FuseClient.struct(WRITE_IN_SIZE, (b) => encodeWriteIn({ fh, offset, size: data.length, write_flags: 0, lock_owner: 0n, flags, padding: 0 }, b));
    const out = decodeWriteOut(FuseClient.need(await this.request(Opcode.WRITE, nodeid, [arg, data]), WRITE_OUT_SIZE, 'write'));
    if (out.size > data.length) throw new DriverError('EPROTO', `write: backend claims ${out.size} bytes of ${data.length}`, 'write');
    return out.size;
  }

  async flush(nodeid: number, fh: number): Promise<void> {
    await this.request(Opcode.FLUSH, nodeid, [FuseClient.struct(FLUSH_IN_SIZE, (b) => encodeFlushIn({ fh, unused: 0, padding: 0, lock_owner: 0n }, b))]);
  }

  async release(nodeid: number, fh: number, flags = 0): Promise<void> {
    await this.request(Opcode.RELEASE, nodeid, [FuseClient.struct(RELEASE_IN_SIZE, (b) => encodeReleaseIn({ fh, flags, release_flags: 0, lock_owner: 0n }, b))]);
  }

  async fsync(nodeid: number, fh: number, datasync = false): Promise<void> {
    await this.request(Opcode.FSYNC, nodeid, [FuseClient.struct(FSYNC_IN_SIZE, (b) => encodeFsyncIn({ fh, fsync_flags: datasync ? 1 : 0, padding: 0 }, b))]);
  }

  // ---- directories --------------------------------------------------------------

  async opendir(nodeid: number): Promise<OpenOut> {
    const arg = FuseClient.struct(OPEN_IN_SIZE, (b) => encodeOpenIn({ flags: 0 /* O_RDONLY */, open_flags: 0 }, b));
    return decodeOpenOut(FuseClient.need(await this.request(Opcode.OPENDIR, nodeid, [arg]), OPEN_OUT_SIZE, 'opendir'));
  }

  async readdir(nodeid: number, fh: number, offset: number, size = 64 * 1024): Promise<DirentRecord[]> {
    const arg = FuseClient.struct(READ_IN_SIZE, (b) => encodeReadIn({ fh, offset, size, read_flags: 0, lock_owner: 0n, flags: 0, padding: 0 }, b));
    return readDirents(await this.request(Opcode.READDIR, nodeid, [arg], size));
  }

  async readdirplus(nodeid: number, fh: number, offset: number, size = 64 * 1024): Promise<DirentplusRecord[]> {
    const arg = FuseClient.struct(READ_IN_SIZE, (b) => encodeReadIn({ fh, offset, size, read_flags: 0, lock_owner: 0n, flags: 0, padding: 0 }, b));
    return readDirentplus(await this.request(Opcode.READDIRPLUS, nodeid, [arg], size));
  }

  async releasedir(nodeid: number, fh: number): Promise<void> {
    await this.request(Opcode.RELEASEDIR, nodeid, [FuseClient.struct(RELEASE_IN_SIZE, (b) => encodeReleaseIn({ fh, flags: 0, release_flags: 0, lock_owner: 0n }, b))]);
  }

  // ---- DAX -----------------------------------------------------------------------

  /** FUSE_SETUPMAPPING: map file [foffset, +len) at window offset moffset. flags: FUSE_SETUPMAPPING_FLAG_*. */
  async setupmapping(nodeid: number, fh: number, foffset: number, len: number, flags: number, moffset: number): Promise<void> {
    await this.request(Opcode.SETUPMAPPING, nodeid, [FuseClient.struct(SETUPMAPPING_IN_SIZE, (b) => encodeSetupmappingIn({ fh, foffset, len, flags, moffset }, b))]);
  }

  async removemapping(nodeid: number, ranges: readonly { moffset: number; len: number }[]): Promise<void> {
    const head = FuseClient.struct(REMOVEMAPPING_IN_SIZE, (b) => encodeRemovemappingIn({ count: ranges.length }, b));
    const list = Buffer.alloc(REMOVEMAPPING_ONE_SIZE * ranges.length);
    ranges.forEach((r, i) => encodeRemovemappingOne(r, list, i * REMOVEMAPPING_ONE_SIZE));
    await this.request(Opcode.REMOVEMAPPING, nodeid, [head, list]);
  }
}

