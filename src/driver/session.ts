// Layer: driver. One call that brings a virtio-fs session up: frontend +
// queues (virtiofs-driver.ts), FUSE_INIT (fuse-client.ts), the VFS (vfs.ts)
// and, when a window is asked for, the DAX manager. Imports ./* only.
import { DaxManager } from './dax/dax-manager.ts';
import { DaxWindow } from './dax/dax-window.ts';
import { FuseClient, type InitInfo } from './fuse-client.ts';
import { VirtioFs } from './vfs.ts';
import { VirtioFsTransport, type VirtioFsTransportOptions } from './virtiofs-driver.ts';

export interface SessionOptions extends VirtioFsTransportOptions {
  /** Per-request timeout (ms). Default 30 s. */
  requestTimeoutMs?: number;
  /** DAX chunk size (a multiple of the backend's map alignment). Default 2 MiB. */
  daxChunkBytes?: number;
  /** Whole-file reads of files smaller than this skip the window (default 64 KiB; 0 = never). */
  daxMinFileBytes?: number;
  umask?: number;
}

export interface VirtioFsSession {
  fs: VirtioFs;
  client: FuseClient;
  transport: VirtioFsTransport;
  init: InitInfo;
  dax: DaxManager | null;
  /** Forget every node, then disconnect (the backend sees the VM go away). */
  close(): Promise<void>;
}

export async function connectVirtioFs(opts: SessionOptions): Promise<VirtioFsSession> {
  const transport = await VirtioFsTransport.connect(opts);
  try {
    const client = new FuseClient(transport, { timeoutMs: opts.requestTimeoutMs ?? 30_000 });
    const wantDax = (opts.daxWindowBytes ?? 0) > 0;
    const init = await client.init({ dax: wantDax });
    const dax = wantDax
      ? new DaxManager(client, new DaxWindow(transport.frontend), { chunkBytes: opts.daxChunkBytes, mapAlignmentLog2: init.mapAlignmentLog2 || 12, minFileBytes: opts.daxMinFileBytes })
      : null;
    const fs = new VirtioFs(client, { dax, umask: opts.umask });
    let closed = false;
    return {
      fs, client, transport, init, dax,
      async close() {
        if (closed) return;
        closed = true;
        if (!transport.frontend.closed) await fs.forgetAll().catch(() => {});
        transport.close();
      },
    };
  } catch (err) {
    transport.close();
    throw err;
  }
}

/** Parse sizes like 64M, 1G, 2097152 (bytes). */
export function parseSize(s: string): number {
  const m = /^(\d+)([kKmMgG]?)(i?[bB])?$/.exec(s.trim());
  if (!m) throw new RangeError(`not a size: '${s}' (use e.g. 0, 64M, 1G)`);
  const mul = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mul;
}
