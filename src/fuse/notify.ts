// Layer: fuse (pure: Buffer only). Imports only ./abi.ts. Encoders for the
// unsolicited messages a server may send the client (enum fuse_notify_code):
// a fuse_out_header with unique 0 and `error` = the notify code, then the
// code's struct and any variable part. Transports write the returned bytes
// to /dev/fuse or a virtio-fs notification buffer as one message.
import {
  NotifyCode, OUT_HEADER_SIZE, NOTIFY_INVAL_INODE_OUT_SIZE, NOTIFY_INVAL_ENTRY_OUT_SIZE, NOTIFY_DELETE_OUT_SIZE,
  NOTIFY_STORE_OUT_SIZE, NOTIFY_RETRIEVE_OUT_SIZE, NOTIFY_POLL_WAKEUP_OUT_SIZE,
  encodeNotifyInvalInodeOut, encodeNotifyInvalEntryOut, encodeNotifyDeleteOut, encodeNotifyStoreOut,
  encodeNotifyRetrieveOut, encodeNotifyPollWakeupOut,
} from './abi.ts';

const NAME_MAX = 255;

function header(code: NotifyCode, bodyLen: number): Buffer {
  const b = Buffer.alloc(OUT_HEADER_SIZE + bodyLen);
  b.writeUInt32LE(b.length, 0);
  b.writeInt32LE(code, 4);
  // unique stays 0: that is what marks a notification.
  return b;
}

function checkName(name: Buffer): void {
  if (name.length === 0 || name.length > NAME_MAX || name.includes(0) || name.includes(0x2f)) {
    throw new RangeError(`Cannot notify about name ${JSON.stringify(name.toString())}: want 1..${NAME_MAX} bytes without NUL or '/'`);
  }
}

/**
 * FUSE_NOTIFY_INVAL_INODE: drop cached data of `ino` in [off, off+len)
 * (len 0 = to the end; off < 0 = attributes only).
 */
export function encodeNotifyInvalInode(ino: number, off: number, len: number): Buffer {
  const b = header(NotifyCode.INVAL_INODE, NOTIFY_INVAL_INODE_OUT_SIZE);
  encodeNotifyInvalInodeOut({ ino, off, len }, b, OUT_HEADER_SIZE);
  return b;
}

/** FUSE_NOTIFY_INVAL_ENTRY: drop the cached name `name` in directory `parent`. flags: FUSE_EXPIRE_ONLY. */
export function encodeNotifyInvalEntry(parent: number, name: Buffer, flags = 0): Buffer {
  checkName(name);
  const b = header(NotifyCode.INVAL_ENTRY, NOTIFY_INVAL_ENTRY_OUT_SIZE + name.length + 1);
  encodeNotifyInvalEntryOut({ parent, namelen: name.length, flags }, b, OUT_HEADER_SIZE);
  name.copy(b, OUT_HEADER_SIZE + NOTIFY_INVAL_ENTRY_OUT_SIZE); // NUL terminator already zero
  return b;
}

/** FUSE_NOTIFY_DELETE: `name` in `parent` (which was `child`) is gone. */
export function encodeNotifyDelete(parent: number, child: number, name: Buffer): Buffer {
  checkName(name);
  const b = header(NotifyCode.DELETE, NOTIFY_DELETE_OUT_SIZE + name.length + 1);
  encodeNotifyDeleteOut({ parent, child, namelen: name.length }, b, OUT_HEADER_SIZE);
  name.copy(b, OUT_HEADER_SIZE + NOTIFY_DELETE_OUT_SIZE);
  return b;
}

/** FUSE_NOTIFY_STORE: push `data` into the client's page cache of `nodeid` at `offset`. */
export function encodeNotifyStore(nodeid: number, offset: number, data: Buffer): Buffer {
  const b = header(NotifyCode.STORE, NOTIFY_STORE_OUT_SIZE + data.length);
  encodeNotifyStoreOut({ nodeid, offset, size: data.length }, b, OUT_HEADER_SIZE);
  data.copy(b, OUT_HEADER_SIZE + NOTIFY_STORE_OUT_SIZE);
  return b;
}

/** FUSE_NOTIFY_RETRIEVE: ask the client to send back (NOTIFY_REPLY) cached data. */
export function encodeNotifyRetrieve(notifyUnique: bigint, nodeid: number, offset: number, size: number): Buffer {
  const b = header(NotifyCode.RETRIEVE, NOTIFY_RETRIEVE_OUT_SIZE);
  encodeNotifyRetrieveOut({ notify_unique: notifyUnique, nodeid, offset, size }, b, OUT_HEADER_SIZE);
  return b;
}

/** FUSE_NOTIFY_POLL: wake up pollers waiting on poll handle `kh`. */
export function encodeNotifyPoll(kh: bigint): Buffer {
  const b = header(NotifyCode.POLL, NOTIFY_POLL_WAKEUP_OUT_SIZE);
  encodeNotifyPollWakeupOut({ kh }, b, OUT_HEADER_SIZE);
  return b;
}
