// Layer: vhost-user (pure). Protocol errors of the vhost-user control channel; imports nothing.

export type VhostUserErrorCode =
  | 'BAD_HEADER' // wrong version bits or reply flag on a request
  | 'BAD_SIZE' // payload size wrong for the request, or beyond what we accept
  | 'UNKNOWN_REQUEST' // a request number we do not implement
  | 'MISSING_FD' // a request that needs an fd came without one
  | 'EXTRA_FD' // fds attached to a request that takes none
  | 'BAD_INDEX' // a vring index past our queues
  | 'BAD_STATE' // a request that makes no sense now (ring running, feature not negotiated)
  | 'BAD_VALUE' // a payload value we cannot honour
  | 'REFUSED' // the device refused (memory could not be mapped, ...)
  | 'DISCONNECTED' // the peer closed the socket
  | 'TRUNCATED'; // the peer stopped mid-message

export class VhostUserError extends Error {
  override readonly name = 'VhostUserError';
  constructor(
    readonly code: VhostUserErrorCode,
    message: string,
    /** True when the connection cannot go on (framing lost, peer gone). */
    readonly fatal = false,
  ) {
    super(`${code}: ${message}`);
  }
}
