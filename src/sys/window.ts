// Layer: sys. The DAX window of the guest-side driver: one address range
// reserved with an anonymous PROT_NONE mapping, into which file ranges are
// mapped with MAP_FIXED (and taken back to PROT_NONE). Imports ./ffi.ts,
// ./errors.ts and ./mmap.ts only.
//
// Every map/unmap is checked against the reservation here, at the lowest
// layer, so no caller can ever place a mapping outside the window.
import { constants } from 'node:os';
import { libc, lastErrno } from './ffi.ts';
import { SysError } from './errors.ts';
import { Mapping, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, MAP_NORESERVE, PROT_NONE, PROT_READ, PROT_WRITE } from './mmap.ts';

const MAP_FIXED = 0x10;
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
const PAGE = 4096;

const mmapFn = libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)');
const munmapFn = libc.func('int munmap(void *addr, size_t length)');

/** An address range we own; file ranges come and go inside it. */
export class Window {
  private closed = false;
  /** The whole reservation; views are only safe over currently mapped ranges. */
  readonly mapping: Mapping;

  private constructor(readonly address: bigint, readonly size: number) {
    this.mapping = new Mapping(address, size);
  }

  /** Reserve `size` bytes (a multiple of the page size) as PROT_NONE. */
  static reserve(size: number): Window {
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE !== 0) {
      throw new SysError(constants.errno.EINVAL, 'mmap', `window size ${size} is not a positive multiple of ${PAGE}`);
    }
    // SAFETY: NULL addr, anonymous, no access: reserves address space only.
    const addr = mmapFn(null, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0n) as bigint | null;
    if (addr === null || addr === MAP_FAILED || addr === 0n) throw new SysError(lastErrno(), 'mmap', 'DAX window reservation');
    return new Window(addr, size);
  }

  private check(offset: number, length: number, what: string): void {
    if (this.closed) throw new SysError(constants.errno.EBADF, what, 'window is closed');
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0 ||
        offset % PAGE !== 0 || length % PAGE !== 0 || offset > this.size - length) {
      throw new SysError(constants.errno.EINVAL, what, `range ${offset}+${length} is not page-aligned inside the ${this.size}-byte window`);
    }
  }

  /** Map fd[fdOffset, +length) at window[offset, +length), replacing whatever was there. */
  map(offset: number, length: number, fd: number, fdOffset: bigint, writable: boolean): void {
    this.check(offset, length, 'mmap');
    if (fdOffset < 0n || fdOffset % BigInt(PAGE) !== 0n) throw new SysError(constants.errno.EINVAL, 'mmap', `file offset ${fdOffset} is not page-aligned`);
    const at = this.address + BigInt(offset);
    const prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
    // SAFETY: [at, at+length) lies wholly inside our reservation (checked above),
    // so MAP_FIXED can only replace pages we own.
    const r = mmapFn(at, length, prot, MAP_SHARED | MAP_FIXED, fd, fdOffset) as bigint | null;
    if (r === null || r === MAP_FAILED) throw new SysError(lastErrno(), 'mmap', 'DAX map');
    if (r !== at) {
      throw new SysError(constants.errno.EFAULT, 'mmap', 'kernel placed a MAP_FIXED mapping elsewhere');
    }
  }

  /** Put window[offset, +length) back to PROT_NONE (the file pages are released). */
  unmap(offset: number, length: number): void {
    this.check(offset, length, 'munmap');
    const at = this.address + BigInt(offset);
    // SAFETY: inside our reservation (checked); replaces with fresh no-access pages.
    const r = mmapFn(at, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0n) as bigint | null;
    if (r === null || r === MAP_FAILED) throw new SysError(lastErrno(), 'mmap', 'DAX unmap');
  }

  /** Release the whole reservation. Views over it must not be touched afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    // SAFETY: the reservation is ours and released once.
    munmapFn(this.address, this.size);
  }
}
