// Layer: virtio (pure). Queue protocol violations; imports nothing.
// A QueueError never becomes an errno: it drops the request (the chain goes
// back with 0 bytes used) or, when `fatal`, breaks the queue.

export type QueueErrorCode =
  | 'INVALID_RING' // ring addresses not inside guest memory or misaligned
  | 'INVALID_AVAIL_IDX' // the driver claims more new buffers than the queue holds
  | 'INVALID_HEAD' // an avail entry names a descriptor past the table
  | 'DESC_OUT_OF_RANGE' // a descriptor index past its table
  | 'CHAIN_LOOP' // more descriptors than the table holds: a loop
  | 'ADDRESS_OUT_OF_RANGE' // a buffer not wholly inside one memory region
  | 'BAD_DIRECTION' // a device-readable descriptor after a device-writable one
  | 'NESTED_INDIRECT' // an indirect table inside an indirect table
  | 'BAD_INDIRECT' // an indirect table of bad length, or INDIRECT together with NEXT
  | 'CHAIN_TOO_LONG' // more bytes than 2^32 - 1 or more segments than we take
  | 'TOO_SHORT'; // too short for the request header

/** Errors that must stop the queue (Firecracker: a hostile avail idx is fatal). */
const FATAL: ReadonlySet<QueueErrorCode> = new Set(['INVALID_RING', 'INVALID_AVAIL_IDX']);

export class QueueError extends Error {
  override readonly name = 'QueueError';
  readonly fatal: boolean;
  constructor(readonly code: QueueErrorCode, message: string) {
    super(`${code}: ${message}`);
    this.fatal = FATAL.has(code);
  }
}
