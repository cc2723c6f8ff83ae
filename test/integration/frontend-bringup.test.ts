// The vhost-user frontend's bring-up against scripted backends on a real
// unix socket: the SET_* messages really are pipelined (a backend that acks
// nothing until it has seen the last one still brings the device up), a
// refused message is named in the error, and an ack out of order is a clear
// framing error. Real backends (ours, C virtiofsd) are in the driver tests.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VhostUserFrontend } from '../../src/vhost-user/frontend.ts';
import { FLAG_NEED_REPLY, FLAG_REPLY, HEADER_SIZE, ProtocolFeature, Request, VHOST_USER_F_PROTOCOL_FEATURES, VHOST_USER_VERSION, requestName } from '../../src/vhost-user/message.ts';
import { VIRTIO_F_VERSION_1 } from '../../src/virtio/ring.ts';

const root = mkdtempSync(join(tmpdir(), 'fe-bringup-'));
after(() => rmSync(root, { recursive: true, force: true }));

interface Msg { request: number; flags: number; payload: Buffer }

function reply(sock: Socket, request: number, value: bigint): void {
  const b = Buffer.alloc(HEADER_SIZE + 8);
  b.writeUInt32LE(request, 0);
  b.writeUInt32LE(VHOST_USER_VERSION | FLAG_REPLY, 4);
  b.writeUInt32LE(8, 8);
  b.writeBigUInt64LE(value, HEADER_SIZE);
  sock.write(b);
}

/**
 * A backend offering VERSION_1 + PROTOCOL_FEATURES and REPLY_ACK that answers
 * the GETs itself and hands every NEED_REPLY message to `onAckable` (called
 * with all such messages seen so far).
 */
async function scripted(name: string, onAckable: (sock: Socket, seen: Msg[]) => void): Promise<{ path: string; seen: Msg[]; close(): void }> {
  const path = join(root, `${name}.sock`);
  const seen: Msg[] = [];
  const conns: Socket[] = [];
  const server = createServer((sock) => {
    conns.push(sock);
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= HEADER_SIZE && buf.length >= HEADER_SIZE + buf.readUInt32LE(8)) {
        const m = { request: buf.readUInt32LE(0), flags: buf.readUInt32LE(4), payload: Buffer.from(buf.subarray(HEADER_SIZE, HEADER_SIZE + buf.readUInt32LE(8))) };
        buf = buf.subarray(HEADER_SIZE + m.payload.length);
        if (m.request === Request.GET_FEATURES) reply(sock, m.request, (1n << BigInt(VIRTIO_F_VERSION_1)) | (1n << BigInt(VHOST_USER_F_PROTOCOL_FEATURES)));
        else if (m.request === Request.GET_PROTOCOL_FEATURES) reply(sock, m.request, 1n << BigInt(ProtocolFeature.REPLY_ACK));
        else if (m.flags & FLAG_NEED_REPLY) {
          seen.push(m);
          onAckable(sock, seen);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, seen, close: () => { for (const c of conns) c.destroy(); server.close(); } };
}

test('the bring-up SET_* messages are pipelined: a backend acking only after the last one still brings the device up', { timeout: 20_000 }, async () => {
  const b = await scripted('pipelined', (sock, seen) => {
    const last = seen[seen.length - 1]!;
    // The second SET_VRING_ENABLE (queue 1) ends the bring-up: ack all at once.
    if (last.request === Request.SET_VRING_ENABLE && last.payload.readUInt32LE(0) === 1) for (const m of seen) reply(sock, m.request, 0n);
  });
  try {
    // Sent one at a time, the first ack would be awaited forever: 2 s timeout.
    const fe = await VhostUserFrontend.connect({ socketPath: b.path, memoryBytes: 1024 * 1024, controlTimeoutMs: 2000 });
    fe.releaseMemory();
    assert.deepEqual(b.seen.map((m) => requestName(m.request)), [
      'SET_OWNER', 'SET_FEATURES', 'SET_MEM_TABLE',
      'SET_VRING_NUM', 'SET_VRING_BASE', 'SET_VRING_ADDR', 'SET_VRING_CALL', 'SET_VRING_KICK',
      'SET_VRING_NUM', 'SET_VRING_BASE', 'SET_VRING_ADDR', 'SET_VRING_CALL', 'SET_VRING_KICK',
      'SET_VRING_ENABLE', 'SET_VRING_ENABLE',
    ]);
  } finally {
    b.close();
  }
});

test('a refused bring-up message fails connect() with an error naming it', { timeout: 20_000 }, async () => {
  const b = await scripted('refused', (sock, seen) => {
    const m = seen[seen.length - 1]!;
    reply(sock, m.request, m.request === Request.SET_MEM_TABLE ? 1n : 0n);
  });
  try {
    await assert.rejects(
      VhostUserFrontend.connect({ socketPath: b.path, memoryBytes: 1024 * 1024, controlTimeoutMs: 2000 }),
      (e: Error & { code?: string }) => e.code === 'REFUSED' && /refused SET_MEM_TABLE \(status 1\)/.test(e.message),
    );
  } finally {
    b.close();
  }
});

test('an ack out of order is a framing error that names both requests', { timeout: 20_000 }, async () => {
  const b = await scripted('reordered', (sock, seen) => {
    // Answer SET_FEATURES before SET_OWNER.
    if (seen.length === 2) { reply(sock, seen[1]!.request, 0n); reply(sock, seen[0]!.request, 0n); }
  });
  try {
    await assert.rejects(
      VhostUserFrontend.connect({ socketPath: b.path, memoryBytes: 1024 * 1024, controlTimeoutMs: 2000 }),
      (e: Error & { code?: string }) => e.code === 'BAD_HEADER' && /unexpected reply to SET_FEATURES \(expected the reply to SET_OWNER\)/.test(e.message),
    );
  } finally {
    b.close();
  }
});
