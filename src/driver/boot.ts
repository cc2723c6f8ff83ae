// Layer: driver. Run a Node application whose modules come from the
// virtio-fs root: registers ./boot-hooks.mjs (node:module register) and
// answers its source requests by reading through the driver. The app gets
// the driver's fs/promises-shaped API as `globalThis.virtiofs` for its own
// files. Imports ./vfs.ts (type) only, plus node:module / node:worker_threads.
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
import type { VirtioFs } from './vfs.ts';

declare global {
  // eslint-disable-next-line no-var
  var virtiofs: VirtioFs | undefined;
}

export interface VirtioFsLoader {
  /** Import `entry` (an absolute path on the virtio-fs root), its modules read through `fs`. */
  boot(fs: VirtioFs, entry: string): Promise<unknown>;
}

/**
 * Registers the module hooks now. register() blocks the calling thread until
 * the hooks thread is up (~50 ms on Node 20), so a caller may do it while a
 * backend works on something else (connectVirtioFs's onBringUpSent), and
 * hand the session over with boot() later.
 */
export function registerVirtioFsHooks(trace: (what: string) => void = () => {}): VirtioFsLoader {
  let source: VirtioFs | null = null;
  const { port1, port2 } = new MessageChannel();
  port1.on('message', (m: { id: number; path: string }) => {
    if (!source) {
      port1.postMessage({ id: m.id, error: `cannot load virtiofs:${m.path}: no virtio-fs session yet` });
      return;
    }
    source.readFile(m.path).then(
      (data) => port1.postMessage({ id: m.id, source: data }),
      (err: { message: string; code?: string }) => port1.postMessage({ id: m.id, error: `cannot load virtiofs:${m.path}: ${err.message}`, code: err.code }),
    );
  });
  // Until boot(), the port must not hold the process open (a failed connect
  // has to end it).
  port1.unref();
  register(new URL('./boot-hooks.mjs', import.meta.url), { data: { port: port2 }, transferList: [port2] });
  trace('module hooks registered (their thread is up)');
  return {
    async boot(fs: VirtioFs, entry: string): Promise<unknown> {
      if (!entry.startsWith('/')) throw new Error(`--entry must be an absolute path on the virtio-fs root (got '${entry}')`);
      source = fs;
      globalThis.virtiofs = fs;
      // port1 stays referenced while the app's module graph loads: nothing else
      // may hold the event loop open then (the hooks run on their own thread),
      // and an empty loop would end the process mid-import (exit 13). Later
      // imports by the running app are kept alive by the app itself.
      port1.ref();
      try {
        return await import(`virtiofs://${entry.split('/').map(encodeURIComponent).join('/')}`);
      } finally {
        port1.unref();
      }
    },
  };
}

/** Import `entry` (an absolute path on the virtio-fs root) through the driver. */
export async function bootFromVirtioFs(fs: VirtioFs, entry: string, trace: (what: string) => void = () => {}): Promise<unknown> {
  if (!entry.startsWith('/')) throw new Error(`--entry must be an absolute path on the virtio-fs root (got '${entry}')`);
  return registerVirtioFsHooks(trace).boot(fs, entry);
}
