// Layer: virtio (pure). Split virtqueue layout (virtio 1.2, section 2.7); imports nothing.

/** struct virtq_desc: le64 addr, le32 len, le16 flags, le16 next. */
export const DESC_SIZE = 16;
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;

/** struct virtq_avail: le16 flags, le16 idx, le16 ring[size], le16 used_event (EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const availSize = (size: number): number => 6 + 2 * size;
/** struct virtq_used: le16 flags, le16 idx, {le32 id, le32 len} ring[size], le16 avail_event. */
export const VIRTQ_USED_F_NO_NOTIFY = 1;
export const USED_ELEM_SIZE = 8;
export const usedSize = (size: number): number => 6 + USED_ELEM_SIZE * size;

/** Feature bits a split-ring device cares about. */
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;

/** Largest queue the spec allows. */
export const MAX_QUEUE_SIZE = 32768;

/**
 * vring_need_event (virtio 1.2, 2.7.7.2 / 2.7.10): notify when new_idx has
 * passed event_idx since old_idx. All arithmetic mod 2^16.
 */
export function vringNeedEvent(eventIdx: number, newIdx: number, oldIdx: number): boolean {
  return ((newIdx - eventIdx - 1) & 0xffff) < ((newIdx - oldIdx) & 0xffff);
}
