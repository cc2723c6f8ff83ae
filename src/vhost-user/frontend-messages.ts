// Layer: vhost-user (pure). Wire structs the FRONTEND side needs beyond
// message.ts: the backend-request channel's shared-memory map requests
// (VHOST_USER_BACKEND_SHMEM_MAP / SHMEM_UNMAP) and the protocol feature bit
// that announces them. Buffer only. Spec spellings kept so they grep.
//
// Upstream has not settled these numbers for vhost-user-fs (see
// protocol-facts.md): both our backend and our frontend take them from here,
// so they agree by construction and change in one place.

/** Backend -> frontend requests on the channel set up by SET_BACKEND_REQ_FD. */
export const enum BackendRequest {
  IOTLB_MSG = 1,
  CONFIG_CHANGE_MSG = 2,
  VRING_HOST_NOTIFIER_MSG = 3,
  SHMEM_MAP = 9,
  SHMEM_UNMAP = 10,
}

/** Protocol feature bit: the frontend maps backend fds into its shared memory regions. */
export const PROTOCOL_F_SHMEM = 22;

/** VhostUserMMap flag: map writable. */
export const SHMEM_MAP_F_RW = 1n;

/** u8 shmid, u8 padding[7], u64 fd_offset, u64 shm_offset, u64 len, u64 flags. */
export const SHMEM_MAP_SIZE = 40;
export interface ShmemMap {
  shmid: number;
  fd_offset: bigint;
  shm_offset: bigint;
  len: bigint;
  flags: bigint;
}
/** Returns null when the payload has the wrong size. */
export function decodeShmemMap(b: Buffer): ShmemMap | null {
  if (b.length !== SHMEM_MAP_SIZE) return null;
  return {
    shmid: b[0]!,
    fd_offset: b.readBigUInt64LE(8),
    shm_offset: b.readBigUInt64LE(16),
    len: b.readBigUInt64LE(24),
    flags: b.readBigUInt64LE(32),
  };
}
export function encodeShmemMap(m: ShmemMap): Buffer {
  const b = Buffer.alloc(SHMEM_MAP_SIZE);
  b[0] = m.shmid;
  b.writeBigUInt64LE(BigInt.asUintN(64, m.fd_offset), 8);
  b.writeBigUInt64LE(BigInt.asUintN(64, m.shm_offset), 16);
  b.writeBigUInt64LE(BigInt.asUintN(64, m.len), 24);
  b.writeBigUInt64LE(BigInt.asUintN(64, m.flags), 32);
  return b;
}
