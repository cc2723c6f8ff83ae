// Layer: driver. The guest's view of the DAX window (virtio-fs shared memory
// region 0): byte access to ranges the backend has mapped, checked page by
// page against what the frontend actually mapped. Imports
// vhost-user/frontend.ts only.
//
// Reading a page of the window that holds no file mapping would fault the
// whole process (PROT_NONE), so every access asks the frontend first; a
// range that is not wholly mapped is refused (the caller falls back to
// FUSE_READ). Known limit shared with every DAX client: a file truncated on
// the HOST while mapped raises SIGBUS on pages past its new end; reads are
// clamped to the size the backend last reported, and stores (writable
// mappings of files opened for writing) stay below it.
import type { VhostUserFrontend } from '../../vhost-user/frontend.ts';

export class DaxWindow {
  private bytes: Buffer | null = null;
  constructor(private readonly frontend: VhostUserFrontend) {}

  get size(): number {
    return this.frontend.window?.size ?? 0;
  }

  /** True when the backend can map into it (window reserved and SHMEM negotiated). */
  get usable(): boolean {
    return this.frontend.window !== null && this.frontend.negotiated.shmem && !this.frontend.closed;
  }

  mapped(offset: number, length: number): boolean {
    return this.frontend.windowMapped(offset, length);
  }

  private whole(): Buffer {
    // One external Buffer over the reservation; only mapped pages are touched.
    this.bytes ??= Buffer.from(this.frontend.window!.mapping.view(0, this.frontend.window!.size));
    return this.bytes;
  }

  /** A copy of window[offset, +length), or null when any page of it is not mapped. */
  copy(offset: number, length: number): Buffer | null {
    if (!this.mapped(offset, length)) return null;
    return Buffer.from(this.whole().subarray(offset, offset + length));
  }

  /**
   * Store `data` at window[offset]: false (nothing written) unless every page
   * is mapped writable, so a store never faults on a read-only or empty page.
   */
  write(offset: number, data: Uint8Array): boolean {
    if (!this.frontend.windowWritable(offset, data.byteLength)) return false;
    this.whole().set(data, offset);
    return true;
  }

  /**
   * Zero-copy: a view of window[offset, +length), or null when not mapped.
   * Valid only until the driver's next mapping change (the next read that
   * misses may evict it); copy what must outlive that.
   */
  view(offset: number, length: number): Buffer | null {
    if (!this.mapped(offset, length)) return null;
    return this.whole().subarray(offset, offset + length);
  }
}
