// Layer: cli. `virtiofs-ts boot`: start a Node application whose modules and
// files all come from the virtio-fs root through our driver (the unikernel
// "boot from virtio-fs" idea, for Node). Imports driver/session.ts,
// driver/boot.ts and cli helpers.
import { registerVirtioFsHooks, type VirtioFsLoader } from '../../driver/boot.ts';
import { connectVirtioFs, parseSize } from '../../driver/session.ts';
import { parseCommandArgs } from '../args.ts';
import { CliError, UsageError } from '../errors.ts';

export const summary = 'run a Node app whose modules and files are loaded from a virtio-fs backend through the driver';

export const help = `Usage: virtiofs-ts boot --socket PATH --entry /app/main.js [--dax-window SIZE]

Connects to a vhost-user-fs backend (virtiofs-ts serve, or virtiofsd), then
imports ENTRY from the shared directory's root. Every relative import and
JSON module of the app is read through the virtio-fs driver (module loader
hooks); node: builtins come from Node. The app reaches its own files through
globalThis.virtiofs (a node:fs/promises-shaped API). Change the app on the
host and boot again: nothing is rebuilt.

Options:
  --socket PATH        the backend's socket
  --entry PATH         the app's main module, absolute on the virtio-fs root
  --dax-window SIZE    DAX window (e.g. 256M; 0 = off, the default)
  -h, --help           this text

Example: virtiofs-ts serve --socket-path /tmp/app.sock --shared-dir examples/static-server &
         virtiofs-ts boot --socket /tmp/app.sock --entry /main.js
`;

const options = {
  socket: { type: 'string' },
  entry: { type: 'string' },
  'dax-window': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** VIRTIOFS_TS_BOOT_TRACE=1: one stderr line per start-up phase, ms since the process started. */
const trace = process.env.VIRTIOFS_TS_BOOT_TRACE === '1'
  ? (what: string) => process.stderr.write(`virtiofs-ts boot: ${performance.now().toFixed(1)} ms ${what}\n`)
  : () => {};

export async function run(argv: string[]): Promise<number> {
  trace('CLI loaded');
  const { values, positionals } = parseCommandArgs('boot', argv, options);
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`, 'boot');
  if (!values.socket) throw new UsageError('--socket PATH is required', 'boot');
  if (!values.entry || !values.entry.startsWith('/')) throw new UsageError('--entry must be an absolute path on the virtio-fs root, e.g. /main.js', 'boot');
  let dax = 0;
  try {
    dax = parseSize(values['dax-window'] ?? '0');
  } catch (err) {
    throw new UsageError(`--dax-window: ${(err as Error).message}`, 'boot');
  }
  let s;
  // The hooks thread starts (blocking this thread) while the backend works
  // through the vhost-user bring-up: the two overlap instead of adding up.
  const hooks: { loader?: VirtioFsLoader } = {};
  try {
    s = await connectVirtioFs({ socketPath: values.socket, daxWindowBytes: dax, onBringUpSent: () => (hooks.loader = registerVirtioFsHooks(trace)) });
    trace(`connected (vhost-user set up, FUSE_INIT done${s.dax?.enabled ? ', DAX window on' : ''})`);
  } catch (err) {
    throw new CliError(`cannot connect to ${values.socket}: ${(err as Error).message}`);
  }
  let closing = false;
  s.transport.frontend.onClose((why) => {
    if (closing) return;
    process.stderr.write(`virtiofs-ts boot: the virtio-fs backend went away (${why.message})\n`);
    process.exit(1);
  });
  const stop = (sig: NodeJS.Signals) => {
    closing = true;
    void s.close().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await (hooks.loader ?? registerVirtioFsHooks(trace)).boot(s.fs, values.entry);
    trace(`app imported (${s.client.requestCount} FUSE requests so far)`);
  } catch (err) {
    closing = true;
    await s.close();
    throw new CliError(`booting ${values.entry} failed: ${(err as Error).message}`);
  }
  // The app runs on (servers keep the event loop alive); the session stays up
  // with it. When the app leaves nothing to do, finish as `node main.js`
  // would: the session's idle fds hold no reference, so the loop empties.
  await new Promise((resolve) => process.once('beforeExit', resolve));
  closing = true;
  await s.close();
  return typeof process.exitCode === 'number' ? process.exitCode : 0;
}
