// Layer: sys. A libuv watch on an fd's readability that can stop keeping the
// event loop alive (unref) while nothing is expected on it: the guest-side
// driver refs its watches only while requests are in flight, so a program
// using it exits when it is done. Imports ./ffi.ts only.
import { koffi } from './ffi.ts';

export interface RefWatch {
  close(): void;
  /** Keep the event loop alive while this watch exists (the default). */
  ref(): void;
  /** Let the process exit even though this watch is active. */
  unref(): void;
}

/** Calls onEvent from the event loop whenever `fd` is readable or hung up. The fd should be non-blocking. */
export function watchFd(fd: number, onEvent: (ev: { readable: boolean; disconnect: boolean }) => void): RefWatch {
  const h = koffi.node.poll(fd, { readable: true, writable: false, disconnect: true }, (ev) => onEvent(ev));
  let closed = false;
  return {
    close: () => { if (!closed) { closed = true; h.close(); } },
    ref: () => { if (!closed) h.ref(); },
    unref: () => { if (!closed) h.unref(); },
  };
}
