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

/** Import `entry` (an absolute path on the virtio-fs root) through the driver. */
export async function bootFromVirtioFs(fs: VirtioFs, entry: string, trace: (what: string) => void = () => {}): Promise<unknown> {
  if (!entry.startsWith('/')) throw new Error(`--entry must be an absolute path on the virtio-fs root (got '${entry}')`);
  const { port1, port2 } = new MessageChannel();
  port1.on('message', (m: { id: number; path: string }) => {
    fs.readFile(m.path).then(
      (source) => port1.postMessage({ id: m.id, source }),
      (err: { message: string; code?: string }) => port1.postMessage({ id: m.id, error: `cannot load virtiofs:${m.path}: ${err.message}`, code: err.code }),
    );
  });
  register(new URL('./boot-hooks.mjs', import.meta.url), { data: { port: port2 }, transferList: [port2] });
  trace('module hooks registered (their thread is up)');
  globalThis.virtiofs = fs;
  // port1 stays referenced while the app's module graph loads: nothing else
  // may hold the event loop open then (the hooks run on their own thread),
  // and an empty loop would end the process mid-import (exit 13). Later
  // imports by the running app are kept alive by the app itself.
  try {
    return await import(`virtiofs://${entry.split('/').map(encodeURIComponent).join('/')}`);
  } finally {
    port1.unref();
  }
}
