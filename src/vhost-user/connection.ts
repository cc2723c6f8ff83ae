// Layer: vhost-user. One vhost-user connection: message framing over an
// AF_UNIX stream with SCM_RIGHTS fds. Imports ./message.ts, ./errors.ts and
// sys/unix-socket.ts (the only way to pass fds in Node).
//
// Receive order (the spec sends header and payload in one sendmsg, fds with
// it): recvmsg the 12-byte header (its ancillary data carries the fds), check
// it, then read exactly `size` payload bytes. Nothing is read ahead, so a
// following message keeps its own fds.
import { closeSocket, pollFd, setNonBlocking, UnixChannel } from '../sys/unix-socket.ts';
import { closeFd } from '../sys/eventfd.ts';
import { VhostUserError } from './errors.ts';
import { FLAG_REPLY, HEADER_SIZE, MAX_PAYLOAD, VERSION_MASK, VHOST_USER_VERSION, encodeHeader, requestName } from './message.ts';

export interface Message {
  request: number;
  flags: number;
  payload: Buffer;
  /** Received fds: owned by whoever handles the message (close what you do not keep). */
  fds: number[];
}

/** How long we wait for the rest of a message that has started arriving. */
const PARTIAL_TIMEOUT_MS = 5000;

export class VhostUserConnection {
  private readonly ch: UnixChannel;
  private readonly head = Buffer.alloc(HEADER_SIZE);
  private closed = false;

  constructor(readonly fd: number) {
    setNonBlocking(fd, true);
    this.ch = new UnixChannel(fd);
  }

  /** Read exactly buf.length bytes at `off`, waiting for stragglers; fds found go to `fds`. */
  private readRest(buf: Buffer, off: number, fds: number[], what: string): void {
    while (off < buf.length) {
      const n = this.ch.recv(buf, off, buf.length - off, fds);
      if (n === 0) throw new VhostUserError('DISCONNECTED', `peer closed the socket in the middle of ${what}`, true);
      if (n < 0) {
        if (!pollFd(this.fd, PARTIAL_TIMEOUT_MS)) throw new VhostUserError('TRUNCATED', `peer sent part of ${what} and stopped`, true);
        continue;
      }
      off += n;
    }
  }

  /**
   * One whole message, or null when none has started arriving. Throws a
   * fatal VhostUserError on disconnect, truncation or a header we cannot frame.
   */
  tryRead(): Message | null {
    const fds: number[] = [];
    try {
      const n = this.ch.recv(this.head, 0, HEADER_SIZE, fds);
      if (n < 0) return null;
      if (n === 0) throw new VhostUserError('DISCONNECTED', 'peer closed the socket', true);
      this.readRest(this.head, n, fds, 'a message header');
      const request = this.head.readUInt32LE(0);
      const flags = this.head.readUInt32LE(4);
      const size = this.head.readUInt32LE(8);
      if ((flags & VERSION_MASK) !== VHOST_USER_VERSION) {
        throw new VhostUserError('BAD_HEADER', `${requestName(request)} with version bits ${flags & VERSION_MASK}, expected ${VHOST_USER_VERSION}`, true);
      }
      if (flags & FLAG_REPLY) throw new VhostUserError('BAD_HEADER', `${requestName(request)} carries the REPLY flag: a frontend never sends replies`, true);
      if (size > MAX_PAYLOAD) {
        // We cannot skip it safely (the bytes may be anything): give up the connection.
        throw new VhostUserError('BAD_SIZE', `${requestName(request)} announces a ${size}-byte payload (we accept at most ${MAX_PAYLOAD})`, true);
      }
      const payload = Buffer.alloc(size);
      this.readRest(payload, 0, fds, `the payload of ${requestName(request)}`);
      return { request, flags, payload, fds };
    } catch (err) {
      for (const fd of fds) closeFd(fd);
      throw err;
    }
  }

  /** Send a reply: header (REPLY set) + payload, waiting for room when the socket is full. */
  reply(request: number, payload: Buffer): void {
    const b = Buffer.alloc(HEADER_SIZE + payload.length);
    encodeHeader({ request, flags: VHOST_USER_VERSION | FLAG_REPLY, size: payload.length }, b);
    payload.copy(b, HEADER_SIZE);
    this.sendAll(b, []);
  }

  /** Send raw bytes (+ fds with the first byte). */
  sendAll(b: Buffer, fds: readonly number[]): void {
    let off = 0;
    let f = fds;
    while (off < b.length) {
      const n = this.ch.send(b, off, b.length - off, f);
      if (n < 0) {
        if (!pollFd(this.fd, PARTIAL_TIMEOUT_MS, true)) throw new VhostUserError('TRUNCATED', 'peer stopped reading our reply', true);
        continue;
      }
      off += n;
      f = [];
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSocket(this.fd);
  }
}
