// Layer: vhost-user (pure). The wire format of vhost-user messages (QEMU
// docs/interop/vhost-user.rst); Buffer only, no sys/ or sockets.
// Names keep the spec spellings so they grep against the document.

/** Header: u32 request, u32 flags, u32 size; the payload follows. */
export const HEADER_SIZE = 12;
export const VHOST_USER_VERSION = 0x1;
export const VERSION_MASK = 0x3;
export const FLAG_REPLY = 0x4;
export const FLAG_NEED_REPLY = 0x8;
/** Largest payload we accept: the biggest request we handle is far smaller. */
export const MAX_PAYLOAD = 4096;

/** Frontend -> backend requests. */
export const enum Request {
  GET_FEATURES = 1,
  SET_FEATURES = 2,
  SET_OWNER = 3,
  RESET_OWNER = 4,
  SET_MEM_TABLE = 5,
  SET_LOG_BASE = 6,
  SET_LOG_FD = 7,
  SET_VRING_NUM = 8,
  SET_VRING_ADDR = 9,
  SET_VRING_BASE = 10,
  GET_VRING_BASE = 11,
  SET_VRING_KICK = 12,
  SET_VRING_CALL = 13,
  SET_VRING_ERR = 14,
  GET_PROTOCOL_FEATURES = 15,
  SET_PROTOCOL_FEATURES = 16,
  GET_QUEUE_NUM = 17,
  SET_VRING_ENABLE = 18,
  SEND_RARP = 19,
  NET_SET_MTU = 20,
  SET_BACKEND_REQ_FD = 21,
  IOTLB_MSG = 22,
  SET_VRING_ENDIAN = 23,
  GET_CONFIG = 24,
  SET_CONFIG = 25,
  CREATE_CRYPTO_SESSION = 26,
  CLOSE_CRYPTO_SESSION = 27,
  POSTCOPY_ADVISE = 28,
  POSTCOPY_LISTEN = 29,
  POSTCOPY_END = 30,
  GET_INFLIGHT_FD = 31,
  SET_INFLIGHT_FD = 32,
  GPU_SET_SOCKET = 33,
  RESET_DEVICE = 34,
  VRING_KICK = 35,
  GET_MAX_MEM_SLOTS = 36,
  ADD_MEM_REG = 37,
  REM_MEM_REG = 38,
  SET_STATUS = 39,
  GET_STATUS = 40,
}

const REQUEST_NAMES: Record<number, string> = {
  1: 'GET_FEATURES', 2: 'SET_FEATURES', 3: 'SET_OWNER', 4: 'RESET_OWNER', 5: 'SET_MEM_TABLE',
  6: 'SET_LOG_BASE', 7: 'SET_LOG_FD', 8: 'SET_VRING_NUM', 9: 'SET_VRING_ADDR', 10: 'SET_VRING_BASE',
  11: 'GET_VRING_BASE', 12: 'SET_VRING_KICK', 13: 'SET_VRING_CALL', 14: 'SET_VRING_ERR',
  15: 'GET_PROTOCOL_FEATURES', 16: 'SET_PROTOCOL_FEATURES', 17: 'GET_QUEUE_NUM', 18: 'SET_VRING_ENABLE',
  19: 'SEND_RARP', 20: 'NET_SET_MTU', 21: 'SET_BACKEND_REQ_FD', 22: 'IOTLB_MSG', 23: 'SET_VRING_ENDIAN',
  24: 'GET_CONFIG', 25: 'SET_CONFIG', 26: 'CREATE_CRYPTO_SESSION', 27: 'CLOSE_CRYPTO_SESSION',
  28: 'POSTCOPY_ADVISE', 29: 'POSTCOPY_LISTEN', 30: 'POSTCOPY_END', 31: 'GET_INFLIGHT_FD',
  32: 'SET_INFLIGHT_FD', 33: 'GPU_SET_SOCKET', 34: 'RESET_DEVICE', 35: 'VRING_KICK',
  36: 'GET_MAX_MEM_SLOTS', 37: 'ADD_MEM_REG', 38: 'REM_MEM_REG', 39: 'SET_STATUS', 40: 'GET_STATUS',
  41: 'GET_SHARED_OBJECT', 42: 'SET_DEVICE_STATE_FD', 43: 'CHECK_DEVICE_STATE',
};

export function requestName(r: number): string {
  return REQUEST_NAMES[r] ?? `request ${r}`;
}

/** Protocol feature bits (GET/SET_PROTOCOL_FEATURES). */
export const enum ProtocolFeature {
  MQ = 0,
  LOG_SHMFD = 1,
  RARP = 2,
  REPLY_ACK = 3,
  MTU = 4,
  BACKEND_REQ = 5,
  CROSS_ENDIAN = 6,
  CRYPTO_SESSION = 7,
  PAGEFAULT = 8,
  CONFIG = 9,
  BACKEND_SEND_FD = 10,
  HOST_NOTIFIER = 11,
  INFLIGHT_SHMFD = 12,
  RESET_DEVICE = 13,
  INBAND_NOTIFICATIONS = 14,
  CONFIGURE_MEM_SLOTS = 15,
  STATUS = 16,
}

/** Virtio feature bit 30 in GET/SET_FEATURES: the frontend may use protocol features. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;

export const bit = (n: number): bigint => 1n << BigInt(n);

/** SET_VRING_KICK/CALL/ERR payload: bits 0-7 index, bit 8 "no fd" (polling). */
export const VRING_IDX_MASK = 0xffn;
export const VRING_NOFD_MASK = 0x100n;

export interface Header {
  request: number;
  flags: number;
  size: number;
}

export function decodeHeader(b: Buffer, off = 0): Header {
  return { request: b.readUInt32LE(off), flags: b.readUInt32LE(off + 4), size: b.readUInt32LE(off + 8) };
}

export function encodeHeader(h: Header, b: Buffer = Buffer.alloc(HEADER_SIZE), off = 0): Buffer {
  b.writeUInt32LE(h.request >>> 0, off);
  b.writeUInt32LE(h.flags >>> 0, off + 4);
  b.writeUInt32LE(h.size >>> 0, off + 8);
  return b;
}

/** A whole message: header then payload, as sent on the wire. */
export function encodeMessage(request: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(HEADER_SIZE + payload.length);
  encodeHeader({ request, flags, size: payload.length }, b);
  payload.copy(b, HEADER_SIZE);
  return b;
}

export const U64_SIZE = 8;
export function encodeU64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, v));
  return b;
}
export function decodeU64(b: Buffer): bigint {
  return b.readBigUInt64LE(0);
}

/** struct vhost_vring_state: u32 index, u32 num. */
export const VRING_STATE_SIZE = 8;
export interface VringState { index: number; num: number }
export function decodeVringState(b: Buffer): VringState {
  return { index: b.readUInt32LE(0), num: b.readUInt32LE(4) };
}
export function encodeVringState(s: VringState): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(s.index >>> 0, 0);
  b.writeUInt32LE(s.num >>> 0, 4);
  return b;
}

/** struct vhost_vring_addr: u32 index, u32 flags, u64 descriptor, u64 used, u64 available, u64 log. */
export const VRING_ADDR_SIZE = 40;
export interface VringAddr { index: number; flags: number; descriptor: bigint; used: bigint; available: bigint; log: bigint }
export function decodeVringAddr(b: Buffer): VringAddr {
  return {
    index: b.readUInt32LE(0),
    flags: b.readUInt32LE(4),
    descriptor: b.readBigUInt64LE(8),
    used: b.readBigUInt64LE(16),
    available: b.readBigUInt64LE(24),
    log: b.readBigUInt64LE(32),
  };
}
export function encodeVringAddr(a: VringAddr): Buffer {
  const b = Buffer.alloc(VRING_ADDR_SIZE);
  b.writeUInt32LE(a.index, 0);
  b.writeUInt32LE(a.flags, 4);
  b.writeBigUInt64LE(a.descriptor, 8);
  b.writeBigUInt64LE(a.used, 16);
  b.writeBigUInt64LE(a.available, 24);
  b.writeBigUInt64LE(a.log, 32);
  return b;
}

/** struct vhost_user_memory_region: u64 guest_phys_addr, memory_size, userspace_addr, mmap_offset. */
export const MEMORY_REGION_SIZE = 32;
export interface MemoryRegion { guest_phys_addr: bigint; memory_size: bigint; userspace_addr: bigint; mmap_offset: bigint }
function decodeRegion(b: Buffer, off: number): MemoryRegion {
  return {
    guest_phys_addr: b.readBigUInt64LE(off),
    memory_size: b.readBigUInt64LE(off + 8),
    userspace_addr: b.readBigUInt64LE(off + 16),
    mmap_offset: b.readBigUInt64LE(off + 24),
  };
}
function encodeRegion(r: MemoryRegion, b: Buffer, off: number): void {
  b.writeBigUInt64LE(r.guest_phys_addr, off);
  b.writeBigUInt64LE(r.memory_size, off + 8);
  b.writeBigUInt64LE(r.userspace_addr, off + 16);
  b.writeBigUInt64LE(r.mmap_offset, off + 24);
}

/** SET_MEM_TABLE: u32 nregions, u32 padding, then nregions regions (at most 8). */
export const VHOST_MEMORY_MAX_NREGIONS = 8;
export function memTableSize(n: number): number {
  return 8 + MEMORY_REGION_SIZE * n;
}
/** Returns null when the payload size does not match its region count. */
export function decodeMemTable(b: Buffer): MemoryRegion[] | null {
  if (b.length < 8) return null;
  const n = b.readUInt32LE(0);
  if (n > VHOST_MEMORY_MAX_NREGIONS || b.length !== memTableSize(n)) return null;
  const out: MemoryRegion[] = [];
  for (let i = 0; i < n; i++) out.push(decodeRegion(b, 8 + i * MEMORY_REGION_SIZE));
  return out;
}
export function encodeMemTable(regions: readonly MemoryRegion[]): Buffer {
  const b = Buffer.alloc(memTableSize(regions.length));
  b.writeUInt32LE(regions.length, 0);
  regions.forEach((r, i) => encodeRegion(r, b, 8 + i * MEMORY_REGION_SIZE));
  return b;
}

/** ADD_MEM_REG / REM_MEM_REG: u64 padding, then one region. */
export const SINGLE_REGION_SIZE = 8 + MEMORY_REGION_SIZE;
export function decodeSingleRegion(b: Buffer): MemoryRegion {
  return decodeRegion(b, 8);
}
export function encodeSingleRegion(r: MemoryRegion): Buffer {
  const b = Buffer.alloc(SINGLE_REGION_SIZE);
  encodeRegion(r, b, 8);
  return b;
}

/** GET_CONFIG / SET_CONFIG: u32 offset, u32 size, u32 flags, u8 payload[size]. */
export const CONFIG_HEADER_SIZE = 12;
export interface ConfigSpace { offset: number; size: number; flags: number; payload: Buffer }
export function decodeConfig(b: Buffer): ConfigSpace | null {
  if (b.length < CONFIG_HEADER_SIZE) return null;
  const size = b.readUInt32LE(4);
  if (b.length !== CONFIG_HEADER_SIZE + size) return null;
  return { offset: b.readUInt32LE(0), size, flags: b.readUInt32LE(8), payload: b.subarray(CONFIG_HEADER_SIZE) };
}
export function encodeConfig(c: ConfigSpace): Buffer {
  const b = Buffer.alloc(CONFIG_HEADER_SIZE + c.payload.length);
  b.writeUInt32LE(c.offset, 0);
  b.writeUInt32LE(c.payload.length, 4);
  b.writeUInt32LE(c.flags, 8);
  c.payload.copy(b, CONFIG_HEADER_SIZE);
  return b;
}

/** virtio-fs config space (virtio 1.2 5.11.4): tag[36], le32 num_request_queues, le32 notify_buf_size. */
export const VIRTIO_FS_CONFIG_SIZE = 44;
export function encodeVirtioFsConfig(tag: string, numRequestQueues: number): Buffer {
  const b = Buffer.alloc(VIRTIO_FS_CONFIG_SIZE);
  const t = Buffer.from(tag, 'utf8');
  if (t.length > 36) throw new RangeError(`tag '${tag}' is longer than 36 bytes`);
  t.copy(b, 0);
  b.writeUInt32LE(numRequestQueues, 36);
  return b;
}
