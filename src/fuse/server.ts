// Layer: fuse (pure: no I/O). Imports only ./abi.ts, ./errors.ts,
// ./filesystem.ts and node:os (for errno numbers). The FUSE file-system
// server: one whole request in (fuse_in_header + arguments, as read from
// /dev/fuse or gathered from a virtqueue chain), the reply bytes out.
//
// Shape follows virtiofsd's server.rs and libfuse's fuse_lowlevel.c: check the
// header, route on the opcode to one private method per op that decodes its
// arguments, calls the FileSystem, and encodes the reply. An unknown opcode or
// an op the backend lacks answers ENOSYS.
//
// Rules for bad input (the server never throws out of handle()):
// - A broken header (shorter than fuse_in_header, or `len` != the bytes we were
//   given) cannot be answered safely (the `unique` is not trustworthy): the
//   request is dropped (handle() returns null) and a line is logged.
// - A well-formed header whose arguments are broken (argument struct too short,
//   a name without its NUL, a count or size that overruns the request) gets an
//   EINVAL reply, so a client waiting on that `unique` is never left hanging.
//   Names: empty or containing '/' -> EINVAL, longer than 255 bytes ->
//   ENAMETOOLONG; '.' and '..' only where they make sense (LOOKUP).
//   Exceptions: FORGET, BATCH_FORGET, INTERRUPT and NOTIFY_REPLY never get a
//   reply; broken ones are dropped with a log line.
// - Requests other than INIT before INIT (or after DESTROY) get EIO; a second
//   INIT gets EIO.
// - A backend error with a numeric errno (FsError, SysError) becomes -errno;
//   anything else becomes -EIO and is logged.
//
// Buffer ownership: the Buffer handle() returns is a view into a reply buffer
// the server owns; it stays valid until the next handle() call. READ data is
// read by the backend straight into that buffer (FileSystem.read's `dest`),
// or, when the transport passes a ReadTarget, straight into the transport's
// own buffer (vhost-user: the guest's writable descriptor), and WRITE data is
// handed to the backend as a view of the request (no copy): the backend must
// not keep either beyond the call.
import { constants } from 'node:os';
import * as abi from './abi.ts';
import { errnoOf as errnoOfImported } from './errors.ts';
import type { DaxWindow } from './dax.ts';
import type {
  FileSystem, RequestContext, Entry, DirEntry, DirSink, DirPlusSink, SetAttrRequest, InitInfo,
} from './filesystem.ts';

const E = constants.errno;
// Module-local copies of everything the hot path touches: under tsx's
// CommonJS-style transform every use of an imported binding is a getter call
// (measured at ~30% of handle()'s time); a local const is a plain load.
const {
  Opcode, FUSE_KERNEL_VERSION, FUSE_KERNEL_MINOR_VERSION, FUSE_MIN_READ_BUFFER,
  FUSE_COMPAT_ENTRY_OUT_SIZE, FUSE_COMPAT_ATTR_OUT_SIZE, FUSE_COMPAT_MKNOD_IN_SIZE, FUSE_COMPAT_WRITE_IN_SIZE,
  FUSE_COMPAT_STATFS_SIZE, FUSE_COMPAT_SETXATTR_IN_SIZE, FUSE_COMPAT_INIT_OUT_SIZE, FUSE_COMPAT_22_INIT_OUT_SIZE,
  IN_HEADER_SIZE, OUT_HEADER_SIZE, ENTRY_OUT_SIZE, ATTR_OUT_SIZE, OPEN_OUT_SIZE, STATFS_OUT_SIZE, INIT_OUT_SIZE,
  FUSE_NAME_OFFSET, FUSE_NAME_OFFSET_DIRENTPLUS, direntSize, direntplusSize,
  encodeEntryOut, encodeAttrOut, encodeOpenOut, encodeKstatfs, encodeInitOut, readU64, writeU64, writeU32,
  FUSE_ASYNC_READ, FUSE_POSIX_LOCKS, FUSE_BIG_WRITES, FUSE_FLOCK_LOCKS, FUSE_DO_READDIRPLUS,
  FUSE_READDIRPLUS_AUTO, FUSE_ASYNC_DIO, FUSE_PARALLEL_DIROPS, FUSE_MAX_PAGES, FUSE_MAP_ALIGNMENT, FUSE_SETXATTR_EXT,
  FUSE_INIT_EXT, FUSE_INIT_RESERVED, FUSE_SECURITY_CTX, FUSE_HAS_IOCTL_DIR,
  FUSE_GETATTR_FH, FUSE_FSYNC_FDATASYNC,
  FATTR_MODE, FATTR_UID, FATTR_GID, FATTR_SIZE, FATTR_ATIME, FATTR_MTIME, FATTR_FH, FATTR_ATIME_NOW,
  FATTR_MTIME_NOW, FATTR_CTIME, FATTR_KILL_SUIDGID,
  describeInitFlags, joinInitFlags, opcodeName,
} = abi;
const errnoOf = errnoOfImported;

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface FuseServerOptions {
  /** Largest WRITE payload we accept (fuse_init_out.max_write). Default 1 MiB. */
  maxWrite?: number;
  /** fuse_init_out.max_pages (with FUSE_MAX_PAGES). Default ceil(maxWrite / 4096). */
  maxPages?: number;
  /** Cap on the client's max_readahead; default: accept what the client offers. */
  maxReadahead?: number;
  /** fuse_init_out.time_gran: timestamp granularity in ns. Default 1. */
  timeGranNs?: number;
  /**
   * virtio-fs DAX: log2 of the mapping alignment; replies FUSE_MAP_ALIGNMENT when set and offered.
   * Linux guests refuse the mount when it exceeds FUSE_DAX_SHIFT (21, 2 MiB); virtiofsd uses 12.
   */
  mapAlignmentLog2?: number;
  /** INIT flags added to what the server wants by default (the backend may still narrow them). */
  extraInitFlags?: bigint;
  /**
   * virtio-fs DAX window (fuse/dax.ts): SETUPMAPPING/REMOVEMAPPING go through
   * it when the backend has no setupmapping of its own. Absent: ENOSYS.
   * Set mapAlignmentLog2 to its alignLog2.
   */
  dax?: DaxWindow;
  log?: (level: LogLevel, msg: string) => void;
}

/**
 * Zero-copy READ replies (handle()'s optional second argument): asked for
 * room for `size` payload bytes, returns a Buffer of at least that many bytes
 * where the payload must go (the transport's final destination, e.g. guest
 * memory right after the reply header), or null to use the server's own
 * reply buffer. Used only during the handle() call that was given it.
 */
export type ReadTarget = (size: number) => Buffer | null;

/** What INIT settled, for transports and tests. */
export interface Negotiated {
  major: number;
  minor: number;
  /** Enabled INIT flags (flags | flags2 << 32). */
  flags: bigint;
  maxWrite: number;
  maxPages: number;
  maxReadahead: number;
  timeGranNs: number;
  mapAlignmentLog2: number;
}

/** Returned by an op handler when no reply is due. */
const NO_REPLY = -0x7fffffff;
const NAME_MAX = 255;
const PATH_MAX = 4096;
const XATTR_NAME_MAX = 255;
const XATTR_SIZE_MAX = 65536;
const XATTR_LIST_MAX = 65536;
/** The kernel refuses replies whose error is <= -ERESTARTSYS (512). */
const ERRNO_LIMIT = 512;
/** A READ larger than this is refused rather than growing the reply buffer further. */
const MAX_REPLY_PAYLOAD = 32 * 1024 * 1024;
const RENAME_IN_SIZE = 8;
const RENAME2_IN_SIZE = 16;
const PAGE_SIZE = 4096;

/** Flags the server itself cannot honour, whatever the backend asks for. */
const UNSUPPORTED_FLAGS =
  FUSE_POSIX_LOCKS | FUSE_FLOCK_LOCKS // no GETLK/SETLK in the FileSystem contract: let the kernel lock locally
  | FUSE_SECURITY_CTX // we do not parse security-context extensions
  | FUSE_HAS_IOCTL_DIR // no IOCTL op
  | FUSE_INIT_RESERVED;

/**
 * Copies a dirent name to b[at..] and zeroes the padding up to `end`. A byte
 * loop: names are short (<= 255 bytes) and Buffer#copy/#fill cost more in
 * argument checks than the copy itself (readdir CPU per entry, see git log).
 */
function putName(b: Buffer, at: number, name: Buffer, end: number): void {
  const n = name.length;
  for (let i = 0; i < n; i++) b[at + i] = name[i];
  for (let i = at + n; i < end; i++) b[i] = 0;
}

/** The reply-buffer cursor readdir/readdirplus fill; one instance per server, reused. */
class DirWriter implements DirSink {
  buf: Buffer;
  pos = 0;
  end = 0;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  add(entry: DirEntry): boolean {
    const name = entry.name;
    const next = this.pos + direntSize(name.length);
    if (next > this.end) return false;
    const b = this.buf;
    const p = this.pos;
    writeU64(b, p, entry.ino);
    writeU64(b, p + 8, entry.off);
    writeU32(b, p + 16, name.length);
    writeU32(b, p + 20, entry.type);
    putName(b, p + FUSE_NAME_OFFSET, name, next);
    this.pos = next;
    return true;
  }
  addRaw(ino: number, off: number, type: number, src: Uint8Array, start: number, end: number): boolean {
    const len = end - start;
    const next = this.pos + direntSize(len);
    if (next > this.end) return false;
    const b = this.buf;
    const p = this.pos;
    writeU64(b, p, ino);
    writeU64(b, p + 8, off);
    writeU32(b, p + 16, len);
    writeU32(b, p + 20, type);
    const at = p + FUSE_NAME_OFFSET - start;
    for (let i = start; i < end; i++) b[at + i] = src[i];
    for (let i = p + FUSE_NAME_OFFSET + len; i < next; i++) b[i] = 0;
    this.pos = next;
    return true;
  }
}

class DirPlusWriter implements DirPlusSink {
  buf: Buffer;
  pos = 0;
  end = 0;
  constructor(buf: Buffer) {
    this.buf = buf;
  }
  add(entry: DirEntry, plus: Entry): boolean {
    const name = entry.name;
    const next = this.pos + direntplusSize(name.length);
    if (next > this.end) return false;
    const b = this.buf;
    const p = this.pos;
    encodeEntryOut(plus, b, p);
    const d = p + ENTRY_OUT_SIZE;
    writeU64(b, d, entry.ino);
    writeU64(b, d + 8, entry.off);
    writeU32(b, d + 16, name.length);
    writeU32(b, d + 20, entry.type);
    putName(b, p + FUSE_NAME_OFFSET_DIRENTPLUS, name, next);
    this.pos = next;
    return true;
  }
}

export class FuseServer {
  /** How large a buffer a transport must read one request into. */
  readonly requestBufferSize: number;
  private readonly fs: FileSystem;
  private readonly log: (level: LogLevel, msg: string) => void;
  private readonly maxWrite: number;
  private readonly maxPages: number;
  private readonly maxReadaheadCap: number | undefined;
  private readonly timeGranNs: number;
  private readonly mapAlignmentLog2: number | undefined;
  private readonly extraInitFlags: bigint;
  private readonly dax: DaxWindow | undefined;

  private out: Buffer;
  /** out[0, 16): the whole reply of errors, empty bodies and zero-copy READs, without a view per request. */
  private outHead: Buffer;
  private readonly dirWriter: DirWriter;
  private readonly dirPlusWriter: DirPlusWriter;

  private initialized = false;
  private negotiatedState: Negotiated | null = null;
  // Hot-path copies of negotiated facts (no BigInt per request).
  private minor = FUSE_KERNEL_MINOR_VERSION;
  private setxattrExt = false;
  private entryOutSize = ENTRY_OUT_SIZE;
  private attrOutSize = ATTR_OUT_SIZE;

  // Cursor for parseName(): where the next argument starts.
  private pos = 0;
  // The current handle() call's ReadTarget, and what went through it.
  private readTarget: ReadTarget | undefined = undefined;
  private direct = 0;
  /** The current handle() call's WRITE payload when the transport passed it apart from the request. */
  private writeData: Buffer | undefined = undefined;
  // Protocol-warning rate limit (a hostile client must not flood the log).
  private warnWindowStart = 0;
  private warnCount = 0;
  private warnSuppressed = 0;

  constructor(fs: FileSystem, options: FuseServerOptions = {}) {
    this.fs = fs;
    this.log = options.log ?? (() => {});
    const maxWrite = options.maxWrite ?? 1024 * 1024;
    if (!Number.isInteger(maxWrite) || maxWrite < 4096 || maxWrite > 0xffffffff) {
      throw new RangeError(`Cannot use maxWrite: received ${maxWrite} (an integer >= 4096)`);
    }
    const maxPages = options.maxPages ?? Math.ceil(maxWrite / PAGE_SIZE);
    if (!Number.isInteger(maxPages) || maxPages < 1 || maxPages > 0xffff) {
      throw new RangeError(`Cannot use maxPages: received ${maxPages} (an integer in 1..65535)`);
    }
    const align = options.mapAlignmentLog2;
    if (align !== undefined && (!Number.isInteger(align) || align < 0 || align > 63)) {
      throw new RangeError(`Cannot use mapAlignmentLog2: received ${align} (an integer in 0..63)`);
    }
    this.maxWrite = maxWrite;
    this.maxPages = maxPages;
    this.maxReadaheadCap = options.maxReadahead;
    this.timeGranNs = options.timeGranNs ?? 1;
    this.mapAlignmentLog2 = align;
    this.extraInitFlags = options.extraInitFlags ?? 0n;
    this.dax = options.dax;
    // A request carries at most a WRITE of maxWrite, or a SETXATTR value of
    // XATTR_SIZE_MAX plus its name; one page covers every header and name.
    this.requestBufferSize = Math.max(FUSE_MIN_READ_BUFFER, Math.max(maxWrite, XATTR_SIZE_MAX + NAME_MAX + 1) + PAGE_SIZE);
    // A reply carries at most a READ of max_pages pages (the kernel bounds
    // reads by max_pages, not max_write) or an xattr value/list.
    this.out = Buffer.alloc(OUT_HEADER_SIZE + Math.max(maxWrite, maxPages * PAGE_SIZE, XATTR_SIZE_MAX));
    this.outHead = this.out.subarray(0, OUT_HEADER_SIZE);
    this.dirWriter = new DirWriter(this.out);
    this.dirPlusWriter = new DirPlusWriter(this.out);
  }

  /** The INIT outcome, or null before INIT / after DESTROY. */
  get negotiated(): Negotiated | null {
    return this.negotiatedState;
  }

  /**
   * Forgets the session (the transport went away without DESTROY, e.g. a
   * virtio device reset): the next request must be INIT again. Does not call
   * fs.destroy; the transport decides that.
   */
  reset(): void {
    this.initialized = false;
    this.negotiatedState = null;
  }

  /**
   * After handle(): how many payload bytes of the reply went into the
   * ReadTarget's buffer instead of the returned one. When > 0, the returned
   * Buffer is the fuse_out_header alone (its len counts these bytes too) and
   * the payload already sits in the target: the transport puts the header in
   * front of it. 0 when no target was given or the reply did not use it.
   */
  get directBytes(): number {
    return this.direct;
  }

  /**
   * Handles exactly one whole request; returns the reply (a view into the
   * server's reply buffer, valid until the next call) or null when no reply is
   * due. Never throws. `readTarget` (optional) lets a READ's data go straight
   * to the transport's destination; see directBytes. `writeData` (optional,
   * WRITE only) is the request's payload kept apart from its header and
   * fuse_write_in (a view of guest memory, no copy): `request` then ends where
   * the data starts, fuse_in_header.len counts both, total_extlen must be 0.
   * Given with any other opcode, the request is answered EINVAL.
   */
  handle(request: Buffer, readTarget?: ReadTarget, writeData?: Buffer): Buffer | null {
    this.direct = 0;
    this.readTarget = readTarget;
    this.writeData = writeData;
    const n = request.length + (writeData !== undefined ? writeData.length : 0);
    if (n < IN_HEADER_SIZE) {
      this.protoWarn(`dropped a request of ${n} bytes: shorter than fuse_in_header (${IN_HEADER_SIZE})`);
      return null;
    }
    const len = request.readUInt32LE(0);
    const opcode = request.readUInt32LE(4);
    if (len !== n) {
      this.protoWarn(`dropped ${opcodeName(opcode)}: header len ${len} but ${n} bytes were received`);
      return null;
    }
    // Copy `unique` as raw bytes: no BigInt on the hot path.
    writeU32(this.out, 8, request.readUInt32LE(8));
    writeU32(this.out, 12, request.readUInt32LE(12));

    let r: number;
    try {
      r = this.dispatch(opcode, request);
    } catch (err) {
      r = this.errorReply(err, opcode);
    }
    this.readTarget = undefined;
    this.writeData = undefined;
    if (r === NO_REPLY) {
      this.direct = 0;
      return null;
    }
    const out = this.out; // read after dispatch: a large READ may have grown it
    let total: number;
    if (r < 0) {
      this.direct = 0; // an error reply carries no payload, wherever a partial read went
      total = OUT_HEADER_SIZE;
      writeU32(out, 4, r); // two's complement of -errno
    } else {
      total = OUT_HEADER_SIZE + r;
      writeU32(out, 4, 0);
    }
    writeU32(out, 0, total);
    const replyLen = total - this.direct;
    return replyLen === OUT_HEADER_SIZE ? this.outHead : out.subarray(0, replyLen);
  }

  // ---- plumbing ----------------------------------------------------------

  private errorReply(err: unknown, opcode: number): number {
    if (opcode === Opcode.FORGET || opcode === Opcode.BATCH_FORGET
      || opcode === Opcode.INTERRUPT || opcode === Opcode.NOTIFY_REPLY) {
      this.log('warn', `${opcodeName(opcode)} failed (no reply is due): ${describe(err)}`);
      return NO_REPLY;
    }
    const errno = errnoOf(err);
    if (errno !== undefined && errno < ERRNO_LIMIT) return -errno;
    this.log('error', `${opcodeName(opcode)} failed with an unexpected error, answering EIO: ${describe(err)}`);
    return -E.EIO;
  }

  private protoWarn(msg: string): void {
    const now = Date.now();
    if (now - this.warnWindowStart >= 1000) {
      if (this.warnSuppressed > 0) this.log('warn', `${this.warnSuppressed} more protocol warnings suppressed`);
      this.warnWindowStart = now;
      this.warnCount = 0;
      this.warnSuppressed = 0;
    }
    if (this.warnCount++ < 20) this.log('warn', msg);
    else this.warnSuppressed++;
  }

  /** Where the arguments end: the request minus any trailing extensions (total_extlen 8-byte units). */
  private argsEnd(req: Buffer): number {
    const ext = req.readUInt16LE(36) * 8;
    const end = req.length - ext;
    return end < IN_HEADER_SIZE ? -1 : end;
  }

  private ctx(req: Buffer): RequestContext {
    return { uid: req.readUInt32LE(24), gid: req.readUInt32LE(28), pid: req.readUInt32LE(32) };
  }

  /**
   * Reads a NUL-terminated name at `pos` (< end). Returns the name (a view,
   * no NUL) and leaves this.pos after the NUL, or returns a negative errno.
   * kind: 0 = file name (no '/', <= NAME_MAX), 1 = symlink target (<= PATH_MAX),
   * 2 = xattr name (<= XATTR_NAME_MAX).
   */
  private parseName(req: Buffer, pos: number, end: number, kind: 0 | 1 | 2): Buffer | number {
    if (pos >= end) return -E.EINVAL;
    const nul = req.indexOf(0, pos);
    if (nul < 0 || nul >= end) return -E.EINVAL;
    const nameLen = nul - pos;
    if (nameLen === 0) return -E.EINVAL;
    if (kind === 0) {
      if (nameLen > NAME_MAX) return -E.ENAMETOOLONG;
      const slash = req.indexOf(0x2f, pos);
      if (slash >= 0 && slash < nul) return -E.EINVAL;
    } else if (kind === 1) {
      if (nameLen >= PATH_MAX) return -E.ENAMETOOLONG;
    } else if (nameLen > XATTR_NAME_MAX) {
      return -E.ERANGE;
    }
    this.pos = nul + 1;
    return req.subarray(pos, nul);
  }

  private ensureReplyCapacity(payload: number): void {
    if (OUT_HEADER_SIZE + payload <= this.out.length) return;
    const grown = Buffer.alloc(OUT_HEADER_SIZE + payload);
    this.out.copy(grown, 0, 0, OUT_HEADER_SIZE);
    this.out = grown;
    this.outHead = grown.subarray(0, OUT_HEADER_SIZE);
    this.dirWriter.buf = grown;
    this.dirPlusWriter.buf = grown;
  }

  private dispatch(opcode: number, req: Buffer): number {
    if (this.writeData !== undefined && opcode !== Opcode.WRITE) {
      this.protoWarn(`${opcodeName(opcode)} came with separate WRITE data: answering EINVAL`);
      return isNoReply(opcode) ? NO_REPLY : -E.EINVAL;
    }
    if (!this.initialized) {
      if (opcode === Opcode.INIT) return this.doInit(req);
      if (opcode === Opcode.FORGET || opcode === Opcode.BATCH_FORGET
        || opcode === Opcode.INTERRUPT || opcode === Opcode.NOTIFY_REPLY) return NO_REPLY;
      this.protoWarn(`${opcodeName(opcode)} before INIT: answering EIO`);
      return -E.EIO;
    }
    const end = this.argsEnd(req);
    if (end < 0) {
      this.protoWarn(`${opcodeName(opcode)}: total_extlen overruns the request`);
      return isNoReply(opcode) ? NO_REPLY : -E.EINVAL;
    }
    switch (opcode) {
      case Opcode.LOOKUP: return this.doLookup(req, end);
      case Opcode.FORGET: return this.doForget(req, end);
      case Opcode.BATCH_FORGET: return this.doBatchForget(req, end);
      case Opcode.GETATTR: return this.doGetattr(req, end);
      case Opcode.SETATTR: return this.doSetattr(req, end);
      case Opcode.READLINK: return this.doReadlink(req);
      case Opcode.SYMLINK: return this.doSymlink(req, end);
      case Opcode.MKNOD: return this.doMknod(req, end);
      case Opcode.MKDIR: return this.doMkdir(req, end);
      case Opcode.UNLINK: return this.doUnlink(req, end, false);
      case Opcode.RMDIR: return this.doUnlink(req, end, true);
      case Opcode.RENAME: return this.doRename(req, end, false);
      case Opcode.RENAME2: return this.doRename(req, end, true);
      case Opcode.LINK: return this.doLink(req, end);
      case Opcode.OPEN: return this.doOpen(req, end, false);
      case Opcode.OPENDIR: return this.doOpen(req, end, true);
      case Opcode.READ: return this.doRead(req, end);
      case Opcode.WRITE: return this.doWrite(req, end);
      case Opcode.STATFS: return this.doStatfs(req);
      case Opcode.RELEASE: return this.doRelease(req, end, false);
      case Opcode.RELEASEDIR: return this.doRelease(req, end, true);
      case Opcode.FSYNC: return this.doFsync(req, end, false);
      case Opcode.FSYNCDIR: return this.doFsync(req, end, true);
      case Opcode.FLUSH: return this.doFlush(req, end);
      case Opcode.SETXATTR: return this.doSetxattr(req, end);
      case Opcode.GETXATTR: return this.doGetxattr(req, end);
      case Opcode.LISTXATTR: return this.doListxattr(req, end);
      case Opcode.REMOVEXATTR: return this.doRemovexattr(req, end);
      case Opcode.ACCESS: return this.doAccess(req, end);
      case Opcode.CREATE: return this.doCreate(req, end);
      case Opcode.READDIR: return this.doReaddir(req, end, false);
      case Opcode.READDIRPLUS: return this.doReaddir(req, end, true);
      case Opcode.FALLOCATE: return this.doFallocate(req, end);
      case Opcode.LSEEK: return this.doLseek(req, end);
      case Opcode.COPY_FILE_RANGE: return this.doCopyFileRange(req, end);
      case Opcode.SETUPMAPPING: return this.doSetupmapping(req, end);
      case Opcode.REMOVEMAPPING: return this.doRemovemapping(req, end);
      case Opcode.DESTROY: return this.doDestroy();
      case Opcode.INIT:
        this.protoWarn('INIT on an initialized session: answering EIO');
        return -E.EIO;
      case Opcode.INTERRUPT:
        // Every op runs to completion synchronously before the next request is
        // read, so there is never anything left to interrupt.
        return NO_REPLY;
      case Opcode.NOTIFY_REPLY:
        // We never send FUSE_NOTIFY_RETRIEVE, so there is nothing to match.
        return NO_REPLY;
      default:
        // GETLK, SETLK, SETLKW, BMAP, IOCTL, POLL, SYNCFS, TMPFILE, STATX,
        // CUSE_INIT and anything newer or unknown.
        return -E.ENOSYS;
    }
  }

  // ---- INIT / DESTROY ----------------------------------------------------

  private doInit(req: Buffer): number {
    const end = this.argsEnd(req);
    const argLen = end - IN_HEADER_SIZE;
    if (end < 0 || argLen < 8) {
      this.protoWarn(`INIT with ${argLen} bytes of arguments: answering EINVAL`);
      return -E.EINVAL;
    }
    const a = IN_HEADER_SIZE;
    const major = req.readUInt32LE(a);
    const minor = req.readUInt32LE(a + 4);
    const maxReadahead = argLen >= 12 ? req.readUInt32LE(a + 8) : 0;
    const flags = argLen >= 16 ? req.readUInt32LE(a + 12) : 0;
    const flags2 = argLen >= 20 ? req.readUInt32LE(a + 16) : 0;
    const out = this.out;
    const o = OUT_HEADER_SIZE;
    if (major < FUSE_KERNEL_VERSION) {
      this.log('error', `INIT: client speaks FUSE ${major}.${minor}, too old: answering EPROTO`);
      return -E.EPROTO;
    }
    if (major > FUSE_KERNEL_VERSION) {
      // Tell the client our major; it will retry INIT with it.
      out.fill(0, o, o + INIT_OUT_SIZE);
      out.writeUInt32LE(FUSE_KERNEL_VERSION, o);
      out.writeUInt32LE(FUSE_KERNEL_MINOR_VERSION, o + 4);
      this.log('info', `INIT: client offers FUSE ${major}.${minor}; answering with ${FUSE_KERNEL_VERSION}.${FUSE_KERNEL_MINOR_VERSION}`);
      return INIT_OUT_SIZE;
    }
    const nego = Math.min(minor, FUSE_KERNEL_MINOR_VERSION);
    const capable = joinInitFlags(flags, flags2);

    // Protocol abilities of this server; cache policy (AUTO_INVAL_DATA,
    // WRITEBACK_CACHE, CACHE_SYMLINKS...) is the backend's to add in init().
    let want = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_ASYNC_DIO | FUSE_PARALLEL_DIROPS
      | FUSE_MAX_PAGES | FUSE_INIT_EXT | this.extraInitFlags;
    if (this.fs.readdirplus) want |= FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO;
    if (this.mapAlignmentLog2 !== undefined) want |= FUSE_MAP_ALIGNMENT;
    const readahead = this.maxReadaheadCap === undefined ? maxReadahead : Math.min(maxReadahead, this.maxReadaheadCap);
    const info: InitInfo = { major, minor: nego, capable, max_readahead: readahead, want };
    // The backend has the last word on what to enable (filesystem.ts: it may
    // narrow or widen `want`); without init() the server's want stands.
    let chosen = this.fs.init ? this.fs.init(info) : want;
    // Reply-format bits the server owns whenever it can use them.
    chosen |= FUSE_INIT_EXT | FUSE_MAX_PAGES;
    if (this.mapAlignmentLog2 !== undefined) chosen |= FUSE_MAP_ALIGNMENT;
    let enabled = capable & chosen & ~UNSUPPORTED_FLAGS;
    if (!this.fs.readdirplus) enabled &= ~(FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO);
    if (!(capable & FUSE_INIT_EXT)) enabled &= 0xffffffffn;

    const useMaxPages = (enabled & FUSE_MAX_PAGES) !== 0n;
    const useAlign = (enabled & FUSE_MAP_ALIGNMENT) !== 0n;
    encodeInitOut({
      major: FUSE_KERNEL_VERSION,
      minor: FUSE_KERNEL_MINOR_VERSION,
      max_readahead: readahead,
      flags: Number(enabled & 0xffffffffn),
      max_background: 0,
      congestion_threshold: 0,
      max_write: this.maxWrite,
      time_gran: this.timeGranNs,
      max_pages: useMaxPages ? this.maxPages : 0,
      map_alignment: useAlign ? this.mapAlignmentLog2! : 0,
      flags2: (enabled & FUSE_INIT_EXT) ? Number((enabled >> 32n) & 0xffffffffn) : 0,
    }, out, o);

    this.initialized = true;
    this.minor = nego;
    this.setxattrExt = (enabled & FUSE_SETXATTR_EXT) !== 0n;
    this.entryOutSize = nego < 9 ? FUSE_COMPAT_ENTRY_OUT_SIZE : ENTRY_OUT_SIZE;
    this.attrOutSize = nego < 9 ? FUSE_COMPAT_ATTR_OUT_SIZE : ATTR_OUT_SIZE;
    this.negotiatedState = {
      major: FUSE_KERNEL_VERSION, minor: nego, flags: enabled, maxWrite: this.maxWrite,
      maxPages: useMaxPages ? this.maxPages : 0, maxReadahead: readahead, timeGranNs: this.timeGranNs,
      mapAlignmentLog2: useAlign ? this.mapAlignmentLog2! : 0,
    };
    this.log('info', `INIT: client ${major}.${minor}, speaking 7.${nego}; flags ${describeInitFlags(enabled)}; max_write ${this.maxWrite}`);
    if (nego < 5) return FUSE_COMPAT_INIT_OUT_SIZE;
    if (nego < 23) return FUSE_COMPAT_22_INIT_OUT_SIZE;
    return INIT_OUT_SIZE;
  }

  private doDestroy(): number {
    this.initialized = false;
    this.negotiatedState = null;
    this.fs.destroy?.();
    return 0;
  }

  // ---- entries -----------------------------------------------------------

  private replyEntry(e: Entry): number {
    encodeEntryOut(e, this.out, OUT_HEADER_SIZE);
    return this.entryOutSize;
  }

  private doLookup(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.lookup) return -E.ENOSYS;
    const name = this.parseName(req, IN_HEADER_SIZE, end, 0);
    if (typeof name === 'number') return name;
    return this.replyEntry(fs.lookup(this.ctx(req), readU64(req, 16), name));
  }

  private doForget(req: Buffer, end: number): number {
    if (end - IN_HEADER_SIZE < 8) {
      this.protoWarn('dropped FORGET: arguments shorter than fuse_forget_in');
      return NO_REPLY;
    }
    this.fs.forget?.(readU64(req, 16), readU64(req, IN_HEADER_SIZE));
    return NO_REPLY;
  }

  private doBatchForget(req: Buffer, end: number): number {
    const a = IN_HEADER_SIZE;
    if (end - a < 8) {
      this.protoWarn('dropped BATCH_FORGET: arguments shorter than fuse_batch_forget_in');
      return NO_REPLY;
    }
    const count = req.readUInt32LE(a);
    if (count > (end - a - 8) / 16) {
      // A count that overruns the request: forget none of it rather than guess.
      this.protoWarn(`dropped BATCH_FORGET: count ${count} overruns ${end - a - 8} bytes of entries`);
      return NO_REPLY;
    }
    const forget = this.fs.forget;
    if (!forget) return NO_REPLY;
    for (let i = 0, p = a + 8; i < count; i++, p += 16) {
      forget.call(this.fs, readU64(req, p), readU64(req, p + 8));
    }
    return NO_REPLY;
  }

  private doGetattr(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.getattr) return -E.ENOSYS;
    let fh: number | undefined;
    const argLen = end - IN_HEADER_SIZE;
    if (argLen >= 16) {
      if (req.readUInt32LE(IN_HEADER_SIZE) & FUSE_GETATTR_FH) fh = readU64(req, IN_HEADER_SIZE + 8);
    } else if (this.minor >= 9) {
      return -E.EINVAL;
    }
    const r = fs.getattr(this.ctx(req), readU64(req, 16), fh);
    encodeAttrOut(r, this.out, OUT_HEADER_SIZE);
    return this.attrOutSize;
  }

  private doSetattr(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.setattr) return -E.ENOSYS;
    if (end - IN_HEADER_SIZE < 88) return -E.EINVAL;
    const a = IN_HEADER_SIZE;
    const valid = req.readUInt32LE(a);
    const set: SetAttrRequest = { valid };
    if (valid & FATTR_FH) set.fh = readU64(req, a + 8);
    if (valid & FATTR_SIZE) set.size = readU64(req, a + 16);
    if (valid & FATTR_ATIME) { set.atime = readU64(req, a + 32); set.atimensec = req.readUInt32LE(a + 56); }
    if (valid & FATTR_MTIME) { set.mtime = readU64(req, a + 40); set.mtimensec = req.readUInt32LE(a + 60); }
    if (valid & FATTR_CTIME) { set.ctime = readU64(req, a + 48); set.ctimensec = req.readUInt32LE(a + 64); }
    if (valid & FATTR_ATIME_NOW) set.atimeNow = true;
    if (valid & FATTR_MTIME_NOW) set.mtimeNow = true;
    if (valid & FATTR_MODE) set.mode = req.readUInt32LE(a + 68);
    if (valid & FATTR_UID) set.uid = req.readUInt32LE(a + 76);
    if (valid & FATTR_GID) set.gid = req.readUInt32LE(a + 80);
    if (valid & FATTR_KILL_SUIDGID) set.killSuidGid = true;
    const r = fs.setattr(this.ctx(req), readU64(req, 16), set);
    encodeAttrOut(r, this.out, OUT_HEADER_SIZE);
    return this.attrOutSize;
  }

  private doReadlink(req: Buffer): number {
    const fs = this.fs;
    if (!fs.readlink) return -E.ENOSYS;
    const target = fs.readlink(this.ctx(req), readU64(req, 16));
    if (target.length > PATH_MAX) return -E.ENAMETOOLONG;
    target.copy(this.out, OUT_HEADER_SIZE);
    return target.length;
  }

  private doSymlink(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.symlink) return -E.ENOSYS;
    // Arguments: the new entry's name, then the link target, each NUL-terminated.
    const name = this.parseName(req, IN_HEADER_SIZE, end, 0);
    if (typeof name === 'number') return name;
    const target = this.parseName(req, this.pos, end, 1);
    if (typeof target === 'number') return target;
    if (isDots(name)) return -E.EEXIST;
    return this.replyEntry(fs.symlink(this.ctx(req), readU64(req, 16), name, target));
  }

  private doMknod(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.mknod) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    const inSize = this.minor < 12 ? FUSE_COMPAT_MKNOD_IN_SIZE : 16;
    if (end - a < inSize) return -E.EINVAL;
    const name = this.parseName(req, a + inSize, end, 0);
    if (typeof name === 'number') return name;
    if (isDots(name)) return -E.EEXIST;
    const umask = inSize >= 12 ? req.readUInt32LE(a + 8) : 0;
    return this.replyEntry(fs.mknod(this.ctx(req), readU64(req, 16), name, req.readUInt32LE(a), req.readUInt32LE(a + 4), umask));
  }

  private doMkdir(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.mkdir) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    if (end - a < 8) return -E.EINVAL;
    const name = this.parseName(req, a + 8, end, 0);
    if (typeof name === 'number') return name;
    if (isDots(name)) return -E.EEXIST;
    return this.replyEntry(fs.mkdir(this.ctx(req), readU64(req, 16), name, req.readUInt32LE(a), req.readUInt32LE(a + 4)));
  }

  private doUnlink(req: Buffer, end: number, dir: boolean): number {
    const fs = this.fs;
    const op = dir ? fs.rmdir : fs.unlink;
    if (!op) return -E.ENOSYS;
    const name = this.parseName(req, IN_HEADER_SIZE, end, 0);
    if (typeof name === 'number') return name;
    if (isDots(name)) return -E.EINVAL;
    op.call(fs, this.ctx(req), readU64(req, 16), name);
    return 0;
  }

  private doRename(req: Buffer, end: number, v2: boolean): number {
    const fs = this.fs;
    if (!fs.rename) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    const inSize = v2 ? RENAME2_IN_SIZE : RENAME_IN_SIZE;
    if (end - a < inSize) return -E.EINVAL;
    const name = this.parseName(req, a + inSize, end, 0);
    if (typeof name === 'number') return name;
    const newname = this.parseName(req, this.pos, end, 0);
    if (typeof newname === 'number') return newname;
    if (isDots(name) || isDots(newname)) return -E.EINVAL;
    const flags = v2 ? req.readUInt32LE(a + 8) : 0;
    fs.rename(this.ctx(req), readU64(req, 16), name, readU64(req, a), newname, flags);
    return 0;
  }

  private doLink(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.link) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    if (end - a < 8) return -E.EINVAL;
    const name = this.parseName(req, a + 8, end, 0);
    if (typeof name === 'number') return name;
    if (isDots(name)) return -E.EEXIST;
    // nodeid in the header is the new parent; the argument names the existing node.
    return this.replyEntry(fs.link(this.ctx(req), readU64(req, a), readU64(req, 16), name));
  }

  private doCreate(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.create) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    // Before 7.12 CREATE carried a fuse_open_in {flags, mode} (8 bytes).
    const inSize = this.minor < 12 ? 8 : 16;
    if (end - a < inSize) return -E.EINVAL;
    const name = this.parseName(req, a + inSize, end, 0);
    if (typeof name === 'number') return name;
    if (isDots(name)) return -E.EEXIST;
    const umask = inSize === 16 ? req.readUInt32LE(a + 8) : 0;
    const r = fs.create(this.ctx(req), readU64(req, 16), name, req.readUInt32LE(a + 4), req.readUInt32LE(a), umask);
    const n = this.replyEntry(r.entry);
    encodeOpenOut(r.open, this.out, OUT_HEADER_SIZE + n);
    return n + OPEN_OUT_SIZE;
  }

  // ---- files -------------------------------------------------------------

  private doOpen(req: Buffer, end: number, dir: boolean): number {
    const fs = this.fs;
    const op = dir ? fs.opendir : fs.open;
    if (!op) return -E.ENOSYS;
    if (end - IN_HEADER_SIZE < 8) return -E.EINVAL;
    const r = op.call(fs, this.ctx(req), readU64(req, 16), req.readUInt32LE(IN_HEADER_SIZE));
    encodeOpenOut(r, this.out, OUT_HEADER_SIZE);
    return OPEN_OUT_SIZE;
  }

  private doRead(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.read) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    // fuse_read_in was 24 bytes before 7.9 (no lock_owner/flags); we only need the first 24.
    if (end - a < 24) return -E.EINVAL;
    const size = req.readUInt32LE(a + 16);
    if (size > MAX_REPLY_PAYLOAD) {
      this.protoWarn(`READ of ${size} bytes refused (limit ${MAX_REPLY_PAYLOAD})`);
      return -E.EINVAL;
    }
    // The transport's own destination when it has one that fits (zero copy);
    // else our reply buffer.
    const target = this.readTarget;
    const direct = target !== undefined && size > 0 ? target(size) : null;
    const useDirect = direct !== null && direct.length >= size;
    let dest: Buffer;
    if (useDirect) {
      dest = direct.length === size ? direct : direct.subarray(0, size);
    } else {
      this.ensureReplyCapacity(size);
      dest = this.out.subarray(OUT_HEADER_SIZE, OUT_HEADER_SIZE + size);
    }
    const n = fs.read(this.ctx(req), readU64(req, 16), readU64(req, a), readU64(req, a + 8), size, dest);
    if (!(n >= 0 && n <= size)) {
      this.log('error', `READ: backend returned ${n} for a read of ${size}: answering EIO`);
      return -E.EIO;
    }
    if (useDirect) this.direct = n;
    return n;
  }

  private doWrite(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.write) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    const inSize = this.minor < 9 ? FUSE_COMPAT_WRITE_IN_SIZE : 40;
    if (end - a < inSize) return -E.EINVAL;
    const size = req.readUInt32LE(a + 16);
    const dataAt = a + inSize;
    let data: Buffer;
    const apart = this.writeData;
    if (apart !== undefined) {
      // Payload kept apart by the transport: the request must end where it starts.
      if (end !== req.length || dataAt !== end || size !== apart.length) {
        this.protoWarn(`WRITE: size ${size}, ${apart.length} data bytes after ${end - a} argument bytes: answering EINVAL`);
        return -E.EINVAL;
      }
      data = apart;
    } else {
      if (size !== end - dataAt) {
        this.protoWarn(`WRITE: size ${size} but ${end - dataAt} data bytes follow: answering EINVAL`);
        return -E.EINVAL;
      }
      data = req.subarray(dataAt, end);
    }
    const n = fs.write(this.ctx(req), readU64(req, 16), readU64(req, a), readU64(req, a + 8),
      data, req.readUInt32LE(a + 20));
    if (!(n >= 0 && n <= size)) {
      this.log('error', `WRITE: backend returned ${n} for a write of ${size}: answering EIO`);
      return -E.EIO;
    }
    const out = this.out;
    out.writeUInt32LE(n, OUT_HEADER_SIZE);
    out.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
    return 8;
  }

  private doStatfs(req: Buffer): number {
    const fs = this.fs;
    if (!fs.statfs) return -E.ENOSYS;
    const st = fs.statfs(this.ctx(req), readU64(req, 16));
    encodeKstatfs(st, this.out, OUT_HEADER_SIZE);
    return this.minor < 4 ? FUSE_COMPAT_STATFS_SIZE : STATFS_OUT_SIZE;
  }

  private doRelease(req: Buffer, end: number, dir: boolean): number {
    const fs = this.fs;
    const a = IN_HEADER_SIZE;
    // fuse_release_in was 16 bytes before 7.8 (no lock_owner); we need fh and flags.
    if (end - a < 16) return -E.EINVAL;
    const nodeid = readU64(req, 16);
    const fh = readU64(req, a);
    if (dir) {
      if (!fs.releasedir) return -E.ENOSYS;
      fs.releasedir(this.ctx(req), nodeid, fh);
    } else {
      if (!fs.release) return -E.ENOSYS;
      fs.release(this.ctx(req), nodeid, fh, req.readUInt32LE(a + 8));
    }
    return 0;
  }

  private doFsync(req: Buffer, end: number, dir: boolean): number {
    const fs = this.fs;
    const op = dir ? fs.fsyncdir : fs.fsync;
    if (!op) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    if (end - a < 16) return -E.EINVAL;
    op.call(fs, this.ctx(req), readU64(req, 16), readU64(req, a), (req.readUInt32LE(a + 8) & FUSE_FSYNC_FDATASYNC) !== 0);
    return 0;
  }

  private doFlush(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.flush) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    if (end - a < 24) return -E.EINVAL;
    fs.flush(this.ctx(req), readU64(req, 16), readU64(req, a), req.readBigUInt64LE(a + 16));
    return 0;
  }

  private doFallocate(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.fallocate) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    if (end - a < 32) return -E.EINVAL;
    fs.fallocate(this.ctx(req), readU64(req, 16), readU64(req, a), readU64(req, a + 8), readU64(req, a + 16), req.readUInt32LE(a + 24));
    return 0;
  }

  private doLseek(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.lseek) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    if (end - a < 24) return -E.EINVAL;
    const off = fs.lseek(this.ctx(req), readU64(req, 16), readU64(req, a), readU64(req, a + 8), req.readUInt32LE(a + 16));
    writeU64(this.out, OUT_HEADER_SIZE, off);
    return 8;
  }

  private doCopyFileRange(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.copyFileRange) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    if (end - a < 56) return -E.EINVAL;
    const n = fs.copyFileRange(this.ctx(req),
      readU64(req, 16), readU64(req, a), readU64(req, a + 8),
      readU64(req, a + 16), readU64(req, a + 24), readU64(req, a + 32),
      readU64(req, a + 40), readU64(req, a + 48));
    if (!(n >= 0 && n <= 0xffffffff)) {
      this.log('error', `COPY_FILE_RANGE: backend returned ${n}: answering EIO`);
      return -E.EIO;
    }
    this.out.writeUInt32LE(n, OUT_HEADER_SIZE);
    this.out.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
    return 8;
  }

  // ---- directories -------------------------------------------------------

  private doReaddir(req: Buffer, end: number, plus: boolean): number {
    const fs = this.fs;
    if (plus ? !fs.readdirplus : !fs.readdir) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    if (end - a < 24) return -E.EINVAL;
    // A short directory reply is always valid, so an oversized request is
    // clamped to the reply buffer rather than refused.
    const size = Math.min(req.readUInt32LE(a + 16), this.out.length - OUT_HEADER_SIZE);
    const ctx = this.ctx(req);
    const nodeid = readU64(req, 16);
    const fh = readU64(req, a);
    const offset = readU64(req, a + 8);
    const w = plus ? this.dirPlusWriter : this.dirWriter;
    w.pos = OUT_HEADER_SIZE;
    w.end = OUT_HEADER_SIZE + size;
    try {
      if (plus) fs.readdirplus!(ctx, nodeid, fh, offset, this.dirPlusWriter);
      else fs.readdir!(ctx, nodeid, fh, offset, this.dirWriter);
    } catch (err) {
      // Entries already taken (and, for readdirplus, already counted as
      // lookups) must reach the client; the error can be met again next call.
      if (w.pos === OUT_HEADER_SIZE) throw err;
      this.log('warn', `${plus ? 'READDIRPLUS' : 'READDIR'} failed after ${w.pos - OUT_HEADER_SIZE} bytes; replying with what was read: ${describe(err)}`);
    }
    return w.pos - OUT_HEADER_SIZE;
  }

  // ---- misc --------------------------------------------------------------

  private doAccess(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.access) return -E.ENOSYS;
    if (end - IN_HEADER_SIZE < 8) return -E.EINVAL;
    fs.access(this.ctx(req), readU64(req, 16), req.readUInt32LE(IN_HEADER_SIZE));
    return 0;
  }

  // ---- xattrs ------------------------------------------------------------

  private doSetxattr(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.setxattr) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    const inSize = this.setxattrExt ? 16 : FUSE_COMPAT_SETXATTR_IN_SIZE;
    if (end - a < inSize) return -E.EINVAL;
    const size = req.readUInt32LE(a);
    const name = this.parseName(req, a + inSize, end, 2);
    if (typeof name === 'number') return name;
    if (size > XATTR_SIZE_MAX) return -E.E2BIG;
    const valueAt = this.pos;
    if (size !== end - valueAt) return -E.EINVAL;
    fs.setxattr(this.ctx(req), readU64(req, 16), name, req.subarray(valueAt, end), req.readUInt32LE(a + 4));
    return 0;
  }

  private replyXattrBytes(value: Buffer, size: number, limit: number): number {
    if (size === 0) {
      // Length query: fuse_getxattr_out.
      this.out.writeUInt32LE(value.length, OUT_HEADER_SIZE);
      this.out.writeUInt32LE(0, OUT_HEADER_SIZE + 4);
      return 8;
    }
    if (value.length > size) return -E.ERANGE;
    if (value.length > limit) return -E.E2BIG;
    this.ensureReplyCapacity(value.length);
    value.copy(this.out, OUT_HEADER_SIZE);
    return value.length;
  }

  private doGetxattr(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.getxattr) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    if (end - a < 8) return -E.EINVAL;
    const name = this.parseName(req, a + 8, end, 2);
    if (typeof name === 'number') return name;
    const value = fs.getxattr(this.ctx(req), readU64(req, 16), name);
    return this.replyXattrBytes(value, req.readUInt32LE(a), XATTR_SIZE_MAX);
  }

  private doListxattr(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.listxattr) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    if (end - a < 8) return -E.EINVAL;
    const list = fs.listxattr(this.ctx(req), readU64(req, 16));
    return this.replyXattrBytes(list, req.readUInt32LE(a), XATTR_LIST_MAX);
  }

  private doRemovexattr(req: Buffer, end: number): number {
    const fs = this.fs;
    if (!fs.removexattr) return -E.ENOSYS;
    const name = this.parseName(req, IN_HEADER_SIZE, end, 2);
    if (typeof name === 'number') return name;
    fs.removexattr(this.ctx(req), readU64(req, 16), name);
    return 0;
  }

  // ---- DAX ---------------------------------------------------------------

  private doSetupmapping(req: Buffer, end: number): number {
    const fs = this.fs;
    const a = IN_HEADER_SIZE;
    if (!fs.setupmapping && this.dax) {
      if (end - a < 40) return -E.EINVAL;
      // fh u64 -1 (all ones) is "no handle": the Linux client always sends it.
      const noFh = req.readUInt32LE(a) === 0xffffffff && req.readUInt32LE(a + 4) === 0xffffffff;
      this.dax.setup(fs, this.ctx(req), readU64(req, 16), noFh ? undefined : readU64(req, a), readU64(req, a + 8), readU64(req, a + 16),
        readU64(req, a + 24), readU64(req, a + 32));
      return 0;
    }
    if (!fs.setupmapping) return -E.ENOSYS;
    if (end - a < 40) return -E.EINVAL;
    // flags is a u64 whose defined bits (WRITE, READ) sit in the low word;
    // undefined high bits are passed through for the backend to refuse.
    fs.setupmapping(this.ctx(req), readU64(req, 16), readU64(req, a), readU64(req, a + 8), readU64(req, a + 16),
      readU64(req, a + 24), readU64(req, a + 32));
    return 0;
  }

  private doRemovemapping(req: Buffer, end: number): number {
    const fs = this.fs;
    const viaDax = !fs.removemapping && this.dax !== undefined;
    if (!fs.removemapping && !viaDax) return -E.ENOSYS;
    const a = IN_HEADER_SIZE;
    if (end - a < 4) return -E.EINVAL;
    const count = req.readUInt32LE(a);
    // The entries follow the 4-byte fuse_removemapping_in directly (the
    // kernel concatenates in-args without padding), so they start unaligned.
    if (count * 16 !== end - a - 4) {
      this.protoWarn(`REMOVEMAPPING: count ${count} does not match ${end - a - 4} bytes of entries: answering EINVAL`);
      return -E.EINVAL;
    }
    const ranges: { moffset: number; len: number }[] = new Array(count);
    for (let i = 0, p = a + 4; i < count; i++, p += 16) ranges[i] = { moffset: readU64(req, p), len: readU64(req, p + 8) };
    if (viaDax) this.dax!.remove(fs, this.ctx(req), ranges);
    else fs.removemapping!(this.ctx(req), ranges);
    return 0;
  }
}

function isNoReply(opcode: number): boolean {
  return opcode === Opcode.FORGET || opcode === Opcode.BATCH_FORGET
    || opcode === Opcode.INTERRUPT || opcode === Opcode.NOTIFY_REPLY;
}

/** '.' or '..' */
function isDots(name: Buffer): boolean {
  return name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e));
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}
