// Layer: sys. mmap/munmap/memfd through libc; imports only ./ffi.ts and ./errors.ts.
// Guest RAM arrives as fds (memfd) over vhost-user; we map each one MAP_SHARED
// and look at it through an external ArrayBuffer (koffi.view, no copy).
import { koffi, libc, lastErrno } from './ffi.ts';
import { SysError } from './errors.ts';

export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MFD_CLOEXEC = 0x1;

const mmapFn = libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)');
const munmapFn = libc.func('int munmap(void *addr, size_t length)');
const memfdCreateFn = libc.func('int memfd_create(const char *name, unsigned int flags)');
const ftruncateFn = libc.func('int ftruncate(int fd, int64_t length)');
const closeFn = libc.func('int close(int fd)');

// koffi 3 hands pointers back as bigints; MAP_FAILED is (void *)-1.
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;

/** Largest single view koffi can make safely: bigger ones abort the process (koffi 3.3, Node 20). */
export const MAX_VIEW_BYTES = 2 ** 32;

/** One live mapping. Views over it are only valid until unmap(); never keep one past that. */
export class Mapping {
  private whole: ArrayBuffer | null = null;
  constructor(readonly address: bigint, readonly length: number) {}

  /** An ArrayBuffer over [offset, offset+length) of the mapping (no copy). */
  view(offset: number, length: number): ArrayBuffer {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0 || offset + length > this.length) {
      throw new RangeError(`view ${offset}+${length} outside a ${this.length}-byte mapping`);
    }
    if (length > MAX_VIEW_BYTES) throw new RangeError(`a single view is limited to ${MAX_VIEW_BYTES} bytes (asked ${length})`);
    // SAFETY: [address+offset, +length) lies inside the live mapping (checked above).
    return koffi.view(this.address + BigInt(offset), length);
  }

  /** The whole mapping as one ArrayBuffer (mappings up to MAX_VIEW_BYTES). */
  get buffer(): ArrayBuffer {
    this.whole ??= this.view(0, this.length);
    return this.whole;
  }
}

/**
 * Map `length` bytes of `fd` at file offset `offset`, shared, read-write (or
 * read-only when `writable` is false). Throws SysError on failure.
 */
export function mapFd(fd: number, length: number, offset: number | bigint, writable = true): Mapping {
  if (!Number.isSafeInteger(length) || length <= 0) throw new SysError(22, 'mmap', `bad length ${length}`);
  const prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  // SAFETY: addr NULL lets the kernel choose; length/offset validated above and
  // by the kernel; the mapping is owned by the returned Mapping until unmap().
  const addr = mmapFn(null, length, prot, MAP_SHARED, fd, BigInt(offset)) as bigint | null;
  if (addr === null || addr === MAP_FAILED || addr === 0n) throw new SysError(lastErrno(), 'mmap');
  return new Mapping(addr, length);
}

/** Anonymous shared mapping (tests use it as stand-in RAM when no fd is needed). */
export function mapAnonymous(length: number): Mapping {
  // SAFETY: fresh anonymous mapping, owned by the returned Mapping.
  const addr = mmapFn(null, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0n) as bigint | null;
  if (addr === null || addr === MAP_FAILED || addr === 0n) throw new SysError(lastErrno(), 'mmap');
  return new Mapping(addr, length);
}

/** Unmap. Every view over `m.buffer` becomes invalid: touching one afterwards faults. */
export function unmap(m: Mapping): void {
  // SAFETY: m came from mapFd/mapAnonymous and is unmapped once by its owner.
  if (munmapFn(m.address, m.length) !== 0) throw new SysError(lastErrno(), 'munmap');
}

/** memfd_create + ftruncate: a sized, shareable memory file (tests, the guest RAM of a test frontend). */
export function memfdCreate(name: string, size: number): number {
  const fd = memfdCreateFn(name, MFD_CLOEXEC) as number;
  if (fd < 0) throw new SysError(lastErrno(), 'memfd_create');
  if ((ftruncateFn(fd, BigInt(size)) as number) !== 0) {
    const e = lastErrno();
    closeFn(fd);
    throw new SysError(e, 'ftruncate');
  }
  return fd;
}
