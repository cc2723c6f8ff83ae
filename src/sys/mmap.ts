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

/** One live mapping. `bytes` is only valid until unmap(); never keep it past that. */
export interface Mapping {
  readonly address: bigint;
  readonly length: number;
  readonly buffer: ArrayBuffer;
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
  // SAFETY: [addr, addr+length) was just mapped and stays mapped until unmap().
  const buffer = koffi.view(addr, length);
  return { address: addr, length, buffer };
}

/** Anonymous shared mapping (tests use it as stand-in RAM when no fd is needed). */
export function mapAnonymous(length: number): Mapping {
  // SAFETY: fresh anonymous mapping, owned by the returned Mapping.
  const addr = mmapFn(null, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0n) as bigint | null;
  if (addr === null || addr === MAP_FAILED || addr === 0n) throw new SysError(lastErrno(), 'mmap');
  return { address: addr, length, buffer: koffi.view(addr, length) };
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
