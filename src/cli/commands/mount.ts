// Layer: cli. `virtiofs-ts mount`: serve a host directory (or an in-memory fs)
// at a mountpoint through /dev/fuse, in the foreground, until SIGINT/SIGTERM.
import { accessSync, constants as fsc, opendirSync, realpathSync, statSync } from 'node:fs';
import { BACKEND_KINDS, CACHE_MODES, type BackendSpec } from '../../fs/backend-spec.ts';
import { DevFuseError, startDevFuse, type DevFuseSession, type LogLevel } from '../../transport/devfuse.ts';
import { exitNow } from '../../sys/process.ts';
import { oneOf, parseCommandArgs } from '../args.ts';
import { CliError, UsageError } from '../errors.ts';

export const summary = 'mount a directory (or an in-memory fs) through /dev/fuse, served until Ctrl-C';

export const help = `Usage: virtiofs-ts mount <shared-dir> <mountpoint> [options]

Mounts <shared-dir> at <mountpoint> through the kernel's FUSE driver, with our
TypeScript server answering every request. Serves in the foreground; SIGINT
(Ctrl-C) or SIGTERM unmounts and exits 0. An outside 'umount <mountpoint>'
also ends it. Needs root and /dev/fuse.

Options:
  --fs passthrough|memory   backend (default passthrough). memory: an in-memory
                            fs seeded with a copy of <shared-dir>; pass '-' as
                            <shared-dir> to start empty
  --readonly                refuse every change (EROFS); mounted MS_RDONLY too
  --cache never|auto|always how long the kernel may cache names, attributes and
                            file data (default auto):
                              never   no caching, every access asks the server
                              auto    short timeouts, data kept while unchanged
                              always  long timeouts, data cache kept across opens
  --xattr                   pass extended attributes through (default off)
  --writeback               let the kernel cache writes (FUSE writeback cache)
  --max-write <bytes>       largest WRITE the kernel may send (4096..1048576)
  --verbose                 log each unusual event; twice for debug detail
  --debug                   stack traces on errors (also VIRTIOFS_TS_DEBUG=1)
  -h, --help                this text

Example:
  sudo npx virtiofs-ts mount /srv/share /mnt/share --cache always
`;

const options = {
  fs: { type: 'string' },
  readonly: { type: 'boolean' },
  cache: { type: 'string' },
  xattr: { type: 'boolean' },
  writeback: { type: 'boolean' },
  'max-write': { type: 'string' },
  verbose: { type: 'boolean', multiple: true },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function checkDir(path: string, what: string, mustRead: boolean): string {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT') throw new CliError(`${what} ${path} does not exist`);
    throw new CliError(`cannot reach ${what} ${path}: ${code ?? (err as Error).message}`);
  }
  if (!st.isDirectory()) throw new CliError(`${what} ${path} is not a directory`);
  if (mustRead) {
    // Read it for real: access(2) says yes to root even where reading fails.
    try {
      const dir = opendirSync(path);
      dir.readSync();
      dir.closeSync();
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new CliError(`cannot read ${what} ${path}: ${code ?? (err as Error).message}`);
    }
  }
  return realpathSync(path);
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('mount', argv, options);
  if (positionals.length !== 2) {
    throw new UsageError(`expected <shared-dir> <mountpoint>, got ${positionals.length} argument${positionals.length === 1 ? '' : 's'}`, 'mount');
  }
  const kind = oneOf('mount', 'fs', values.fs, BACKEND_KINDS, 'passthrough');
  const cache = oneOf('mount', 'cache', values.cache, CACHE_MODES, 'auto');
  let maxWrite: number | undefined;
  if (values['max-write'] !== undefined) {
    maxWrite = Number(values['max-write']);
    if (!Number.isInteger(maxWrite) || maxWrite < 4096 || maxWrite > 1 << 20) {
      throw new UsageError(`--max-write must be an integer from 4096 to 1048576 (got '${values['max-write']}')`, 'mount');
    }
  }
  const verbosity = values.verbose?.length ?? 0;
  const logLevel: LogLevel = verbosity >= 2 ? 'debug' : verbosity === 1 ? 'info' : 'warn';
  const [sharedArg, mountArg] = positionals as [string, string];

  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new CliError('mounting needs root (CAP_SYS_ADMIN); run it with sudo');
  }
  try {
    accessSync('/dev/fuse', fsc.R_OK | fsc.W_OK);
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new CliError(
      code === 'ENOENT' ? '/dev/fuse is missing: load the FUSE module (modprobe fuse)' : `cannot use /dev/fuse: ${code}`,
    );
  }
  const emptyMemory = kind === 'memory' && sharedArg === '-';
  const sharedDir = emptyMemory ? undefined : checkDir(sharedArg, 'shared directory', true);
  const mountpoint = checkDir(mountArg, 'mountpoint', false);
  if (sharedDir !== undefined && kind === 'passthrough' && (mountpoint === sharedDir || mountpoint.startsWith(`${sharedDir}/`))) {
    throw new CliError(`mountpoint ${mountpoint} is inside the shared directory ${sharedDir}; the mount would serve itself`);
  }

  const backend: BackendSpec = { kind, readonly: !!values.readonly, cache, xattr: !!values.xattr, writeback: !!values.writeback };
  if (sharedDir !== undefined) backend.sharedDir = sharedDir;

  const say = (msg: string) => process.stderr.write(`virtiofs-ts: ${msg}\n`);
  // Handlers go in before mount(2), so no signal can find the mount up and
  // nobody to take it down; one arriving during start-up is acted on after.
  let session: DevFuseSession | undefined;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (!session) {
      say(`${sig}: stopping once the mount is up`);
      return;
    }
    if (signals === 1) {
      say(`${sig}: unmounting ${mountpoint}`);
      try {
        session.unmount();
      } catch (err) {
        say(`unmount failed: ${(err as Error).message}; send the signal again to abort the connection`);
      }
    } else {
      say(`${sig} again: aborting the connection; users of the mount get ENOTCONN`);
      session.abort();
      exitNow(1);
    }
  };
  const removeHandlers = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);

  try {
    session = await startDevFuse({
      mountpoint,
      backend,
      logLevel,
      log: (level, msg) => say(`${level}: ${msg}`),
      ...(maxWrite !== undefined ? { maxWrite } : {}),
    });
  } catch (err) {
    removeHandlers();
    if (err instanceof DevFuseError) throw new CliError(err.message);
    throw err;
  }
  const what = kind === 'memory' ? `an in-memory fs${sharedDir ? ` seeded from ${sharedDir}` : ''}` : sharedDir!;
  const flags = [kind, `cache=${cache}`, values.readonly ? 'readonly' : 'read-write', values.xattr ? 'xattr' : '', values.writeback ? 'writeback' : '']
    .filter(Boolean)
    .join(', ');
  process.stdout.write(`Serving ${what} at ${mountpoint} (${flags}). Ctrl-C or SIGTERM unmounts.\n`);
  if (signals > 0) {
    signals = 0;
    onSignal('SIGTERM');
  }

  const result = await session.done;
  removeHandlers();
  if (result.reason === 'crashed') {
    throw new CliError(`the server stopped unexpectedly: ${result.error?.message ?? 'unknown error'}`);
  }
  process.stdout.write(`Unmounted ${mountpoint} after ${result.requests} requests.\n`);
  return 0;
}
