// Layer: transport (data plane of the /dev/fuse transport). Runs on a worker
// thread: builds the backend, owns the FuseServer, and serves the device with
// blocking read(2)/write(2) until the kernel says the connection is gone.
// Imports fuse/server.ts, fuse/abi.ts (opcodes), fs/create.ts and node: modules.
//
// Blocking reads on this thread are the point: the worker has nothing else to
// do, the main thread stays free for signals and logging, and one owner means
// the inode and handle tables need no locks.
import { parentPort, workerData } from 'node:worker_threads';
import { readSync, writeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { FuseServer } from '../fuse/server.ts';
import { Opcode } from '../fuse/abi.ts';
import { createFileSystem } from '../fs/create.ts';
import { LOG_LEVELS, type DevFuseWorkerData, type FromWorker, type LogLevel, type ToWorker } from './devfuse-protocol.ts';

const data = (workerData as { data: DevFuseWorkerData }).data;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const threshold = LOG_LEVELS.indexOf(data.logLevel);

function log(level: LogLevel, msg: string): void {
  if (LOG_LEVELS.indexOf(level) <= threshold) post({ type: 'log', level, msg });
}

const EIO = osConstants.errno.EIO;

/** A bare fuse_out_header answering `request` with -EIO. */
function eioReply(request: Buffer): Buffer {
  const out = Buffer.alloc(16);
  out.writeUInt32LE(16, 0);
  out.writeInt32LE(-EIO, 4);
  request.copy(out, 8, 8, 16); // unique
  return out;
}

function codeOf(err: unknown): string | undefined {
  return err && typeof err === 'object' && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function serve(server: FuseServer, fd: number): FromWorker & { type: 'stopped' } {
  const buf = Buffer.alloc(server.requestBufferSize);
  let requests = 0;
  let initialized = false;
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      const code = codeOf(err);
      if (code === 'EINTR' || code === 'EAGAIN') continue;
      // ENODEV: unmounted (or aborted through fusectl): the normal way out.
      if (code === 'ENODEV') return { type: 'stopped', reason: 'unmounted', requests };
      throw err;
    }
    if (n === 0) return { type: 'stopped', reason: 'unmounted', requests };
    requests++;
    const request = buf.subarray(0, n);
    const opcode = n >= 8 ? request.readUInt32LE(4) : -1;
    let reply: Buffer | null;
    try {
      reply = server.handle(request);
    } catch (err) {
      // The server promises never to throw; if it does anyway, the daemon
      // stays up and the caller gets EIO instead of waiting forever.
      log('error', `server failed on opcode ${opcode}: ${(err as Error).stack ?? err}`);
      reply = opcode === Opcode.FORGET || opcode === Opcode.BATCH_FORGET || n < 16 ? null : eioReply(request);
    }
    if (reply) {
      try {
        writeSync(fd, reply);
      } catch (err) {
        const code = codeOf(err);
        // ENOENT: the request was interrupted and the kernel no longer waits for it.
        if (code === 'ENOENT') continue;
        if (code === 'ENODEV') return { type: 'stopped', reason: 'unmounted', requests };
        // EINVAL and friends: the kernel refused our reply. Say so, keep serving.
        log('error', `kernel refused the reply to opcode ${opcode}: ${(err as Error).message}`);
      }
    }
    if (!initialized && opcode === Opcode.INIT) {
      initialized = true;
      post({ type: 'initialized' });
    }
  }
}

try {
  const fs = await createFileSystem(data.backend);
  const server = new FuseServer(fs, {
    ...(data.maxWrite !== undefined ? { maxWrite: data.maxWrite } : {}),
    log: (level: string, msg: string) => log((LOG_LEVELS as readonly string[]).includes(level) ? (level as LogLevel) : 'info', msg),
  });
  port.once('message', (m: ToWorker) => {
    if (m.type !== 'start') return;
    try {
      const result = serve(server, data.fd);
      try {
        fs.destroy?.();
      } catch (err) {
        log('warn', `backend destroy failed: ${(err as Error).message}`);
      }
      post(result);
    } catch (err) {
      post({ type: 'fatal', message: (err as Error).message, stack: (err as Error).stack });
    }
    port.close();
  });
  post({ type: 'ready' });
} catch (err) {
  post({ type: 'fatal', message: (err as Error).message, stack: (err as Error).stack });
  port.close();
}
