// Layer: cli. `virtiofs-ts serve`: a vhost-user-fs backend for QEMU, a drop-in
// for virtiofsd (Rust-style options plus the C daemon's `-o source=...` form).
// Imports transport/vhost-user-device.ts, fs/backend-spec.ts and cli helpers.
import { opendirSync, realpathSync, statSync } from 'node:fs';
import { BACKEND_KINDS, CACHE_MODES, type BackendKind, type BackendSpec, type CacheMode } from '../../fs/backend-spec.ts';
import { startVhostUserFsDevice, VhostUserDeviceError, type LogLevel } from '../../transport/vhost-user-device.ts';
import { parseCommandArgs } from '../args.ts';
import { CliError, UsageError } from '../errors.ts';

export const summary = 'serve a directory to a QEMU guest as a vhost-user-fs backend (a drop-in virtiofsd)';

export const help = `Usage: virtiofs-ts serve --socket-path PATH | --fd N --shared-dir DIR [options]
       virtiofs-ts serve --socket-path PATH -o source=DIR[,cache=none|auto|always][,xattr][,writeback][,readonly]
       virtiofs-ts serve --print-capabilities

Listens on a vhost-user socket, accepts ONE frontend (QEMU's vhost-user-fs-pci),
serves DIR to the guest, and exits 0 when the VM disconnects.

  QEMU side:
    -chardev socket,id=vfs,path=PATH
    -device vhost-user-fs-pci,chardev=vfs,tag=TAG
    -object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem
  Guest side:
    mount -t virtiofs TAG /mnt

  With a DAX window (QEMU 11.1+: the generic device; serve --tag TAG --dax-window 256M):
    -chardev socket,id=vfs,path=PATH
    -device vhost-user-test-device-pci,virtio-id=26,num_vqs=2,vq_size=1024,config_size=40,chardev=vfs
    -object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem
  Guest side:
    mount -t virtiofs -o dax=always TAG /mnt

Options:
  --socket-path PATH        create the listening socket at PATH
  --fd N                    accept on the already listening socket fd N (libvirt)
  --shared-dir DIR          the directory to share
  --fs passthrough|memory   backend (default passthrough); memory: an in-memory
                            fs seeded with a copy of DIR (no DIR: empty)
  --cache never|auto|always how long the guest may cache (default auto)
  --readonly                refuse every change (EROFS)
  --xattr                   pass extended attributes through
  --writeback               let the guest cache writes (FUSE writeback cache)
  --thread-pool-size N      accepted (virtiofsd command lines) and ignored:
                            requests are served in batches on the queue's own
                            thread, like virtiofsd's default of 0. The backend's
                            inode and handle tables live in that thread's heap,
                            so a pool would need a copy per thread; measured,
                            C virtiofsd with --thread-pool-size 64 is slower
                            than with 0 (see README)
  --poll-us N               after each batch, watch the request queue up to N µs
                            for the next request before sleeping (adaptive, like
                            QEMU's poll-max-ns: the window shrinks to 0 while
                            requests come less often); default 0 = never poll
  --tag TAG                 offer the config space (tag) to frontends that ask
                            for it. Off by default: QEMU 7.1-8.0 crash when a
                            vhost-user-fs backend offers CONFIG
  --dax-window SIZE         offer a DAX window of SIZE (e.g. 256M; a multiple of 2M):
                            protocol feature SHMEM, the window as shared memory
                            region 0, FUSE_SETUPMAPPING served by SHMEM_MAP.
                            Needs a frontend with SHMEM (QEMU 11.1's generic
                            vhost-user device, our client --dax-window); others
                            never see it
                            (QEMU 11.1: up to 480M never runs out of its 512
                            memory regions; see README)
  --log-level LEVEL         error|warn|info|debug (also off, trace); default warn
  --print-capabilities      print the vhost-user backend capabilities as JSON, exit
  -o OPTS                   virtiofsd (C) style: source=DIR, cache=none|auto|always,
                            xattr|no_xattr, writeback|no_writeback, readonly
  -h, --help                this text
`;

const options = {
  'socket-path': { type: 'string' },
  fd: { type: 'string' },
  'shared-dir': { type: 'string' },
  fs: { type: 'string' },
  cache: { type: 'string' },
  readonly: { type: 'boolean' },
  xattr: { type: 'boolean' },
  writeback: { type: 'boolean' },
  'thread-pool-size': { type: 'string' },
  'poll-us': { type: 'string' },
  tag: { type: 'string' },
  'dax-window': { type: 'string' },
  'log-level': { type: 'string' },
  'print-capabilities': { type: 'boolean' },
  o: { type: 'string', short: 'o', multiple: true },
  // Accepted and ignored, so libvirt/virtiofsd command lines start us unchanged.
  sandbox: { type: 'string' },
  seccomp: { type: 'string' },
  'announce-submounts': { type: 'boolean' },
  'inode-file-handles': { type: 'string' },
  foreground: { type: 'boolean', short: 'f' },
  syslog: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** vhost-user.rst "Backend program conventions": what --print-capabilities prints for type fs. */
export const CAPABILITIES = { type: 'fs', features: ['separate-options'] };

const LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

function logLevelOf(v: string | undefined): LogLevel | 'off' {
  if (v === undefined) return 'warn';
  if (v === 'off') return 'off';
  if (v === 'trace') return 'debug';
  if (v === 'warning') return 'warn';
  if ((LEVELS as readonly string[]).includes(v)) return v as LogLevel;
  throw new UsageError(`--log-level must be one of off, error, warn, info, debug, trace (got '${v}')`, 'serve');
}

interface Legacy {
  source?: string;
  cache?: CacheMode;
  xattr?: boolean;
  writeback?: boolean;
  readonly?: boolean;
}

/** The C virtiofsd's -o list (comma separated, may repeat). Unknown ones are refused by name. */
function parseLegacy(list: string[] | undefined): Legacy {
  const out: Legacy = {};
  for (const item of (list ?? []).flatMap((s) => s.split(','))) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const val = eq < 0 ? undefined : item.slice(eq + 1);
    switch (key) {
      case 'source':
        if (!val) throw new UsageError('-o source= needs a directory', 'serve');
        out.source = val;
        break;
      case 'cache':
        if (val === 'none' || val === 'never') out.cache = 'never';
        else if (val === 'auto' || val === 'always') out.cache = val;
        else throw new UsageError(`-o cache must be none, auto or always (got '${val}')`, 'serve');
        break;
      case 'xattr': out.xattr = true; break;
      case 'no_xattr': out.xattr = false; break;
      case 'writeback': out.writeback = true; break;
      case 'no_writeback': out.writeback = false; break;
      case 'readonly': case 'ro': out.readonly = true; break;
      // Options of the C daemon that change nothing for us.
      case 'flock': case 'no_flock': case 'posix_lock': case 'no_posix_lock': case 'sandbox': case 'timeout':
      case 'announce_submounts': case 'killpriv_v2': case 'no_killpriv_v2': case 'log_level': case 'allow_direct_io':
      case 'no_allow_direct_io': case 'readdirplus': case 'no_readdirplus': case 'modcaps': case 'xattrmap':
        break;
      default:
        throw new UsageError(`unknown -o option '${key}'`, 'serve');
    }
  }
  return out;
}

function checkDir(path: string): string {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new CliError(`shared directory ${path}: ${(err as { code?: string }).code ?? (err as Error).message}`);
  }
  if (!st.isDirectory()) throw new CliError(`shared directory ${path} is not a directory`);
  try {
    opendirSync(path).closeSync();
  } catch (err) {
    throw new CliError(`cannot read shared directory ${path}: ${(err as { code?: string }).code ?? (err as Error).message}`);
  }
  return realpathSync(path);
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('serve', argv, options);
  if (values['print-capabilities']) {
    process.stdout.write(`${JSON.stringify(CAPABILITIES, null, 2)}\n`);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`, 'serve');
  const legacy = parseLegacy(values.o);
  const level = logLevelOf(values['log-level'] ?? (values.debug ? 'debug' : undefined));

  const socketPath = values['socket-path'];
  let listenFd: number | undefined;
  if (values.fd !== undefined) {
    listenFd = Number(values.fd);
    if (!Number.isInteger(listenFd) || listenFd < 0) throw new UsageError(`--fd must be a file descriptor number (got '${values.fd}')`, 'serve');
  }
  if ((socketPath === undefined) === (listenFd === undefined)) {
    throw new UsageError('give exactly one of --socket-path PATH or --fd N', 'serve');
  }
  if (values['thread-pool-size'] !== undefined && !/^\d+$/.test(values['thread-pool-size'])) {
    throw new UsageError(`--thread-pool-size must be a number (got '${values['thread-pool-size']}')`, 'serve');
  }
  let pollUs: number | undefined;
  if (values['poll-us'] !== undefined) {
    if (!/^\d+$/.test(values['poll-us']) || Number(values['poll-us']) > 10_000) throw new UsageError(`--poll-us must be a number of µs in 0..10000 (got '${values['poll-us']}')`, 'serve');
    pollUs = Number(values['poll-us']);
  }
  const kindArg = values.fs ?? 'passthrough';
  if (!(BACKEND_KINDS as readonly string[]).includes(kindArg)) throw new UsageError(`--fs must be one of ${BACKEND_KINDS.join(', ')} (got '${kindArg}')`, 'serve');
  const kind = kindArg as BackendKind;
  let cache: CacheMode = legacy.cache ?? 'auto';
  if (values.cache !== undefined) {
    const c = values.cache === 'none' ? 'never' : values.cache;
    if (!(CACHE_MODES as readonly string[]).includes(c)) throw new UsageError(`--cache must be one of ${CACHE_MODES.join(', ')} (got '${values.cache}')`, 'serve');
    cache = c as CacheMode;
  }
  const dirArg = values['shared-dir'] ?? legacy.source;
  if (values['shared-dir'] !== undefined && legacy.source !== undefined && values['shared-dir'] !== legacy.source) {
    throw new UsageError('--shared-dir and -o source= name different directories', 'serve');
  }
  if (dirArg === undefined && kind === 'passthrough') throw new UsageError('--shared-dir DIR (or -o source=DIR) is required', 'serve');
  if (values.tag !== undefined && (Buffer.byteLength(values.tag) === 0 || Buffer.byteLength(values.tag) > 36)) {
    throw new UsageError('--tag must be 1 to 36 bytes', 'serve');
  }
  let daxWindow: number | undefined;
  if (values['dax-window'] !== undefined) {
    try {
      daxWindow = parseByteSize(values['dax-window']);
    } catch (err) {
      throw new UsageError(`--dax-window: ${(err as Error).message}`, 'serve');
    }
    if (daxWindow === 0) daxWindow = undefined;
    else if (daxWindow % (2 * 1024 * 1024) !== 0) throw new UsageError(`--dax-window must be a multiple of 2M (got '${values['dax-window']}')`, 'serve');
  }
  const backend: BackendSpec = {
    kind,
    readonly: !!(values.readonly ?? legacy.readonly),
    cache,
    xattr: !!(values.xattr ?? legacy.xattr),
    writeback: !!(values.writeback ?? legacy.writeback),
  };
  if (dirArg !== undefined) backend.sharedDir = checkDir(dirArg);

  const threshold = level === 'off' ? -1 : LEVELS.indexOf(level);
  const say = (lvl: LogLevel, msg: string) => {
    if (LEVELS.indexOf(lvl) <= threshold) process.stderr.write(`virtiofs-ts serve: ${lvl}: ${msg}\n`);
  };

  let device;
  try {
    device = await startVhostUserFsDevice({
      ...(socketPath !== undefined ? { socketPath } : { listenFd: listenFd! }),
      backend,
      ...(values.tag !== undefined ? { tag: values.tag } : {}),
      ...(daxWindow !== undefined ? { daxWindow } : {}),
      ...(pollUs !== undefined ? { pollUs } : {}),
      logLevel: level === 'off' ? 'error' : level,
      log: say,
    });
  } catch (err) {
    if (err instanceof VhostUserDeviceError) throw new CliError(err.message);
    throw err;
  }
  if (values['thread-pool-size'] !== undefined && Number(values['thread-pool-size']) > 0) {
    // Measured: one data-plane thread beats C virtiofsd's pool on every guest fio row here.
    say('info', `--thread-pool-size ${values['thread-pool-size']}: requests are served on the queue thread (a pool is not needed)`);
  }
  say('info', `waiting for a frontend on ${socketPath ?? `fd ${listenFd}`} (${kind}, cache=${cache}${backend.readonly ? ', readonly' : ''})`);
  const onSignal = (sig: NodeJS.Signals) => {
    say('info', `${sig}: stopping`);
    device.close();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const result = await device.done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  say('info', `done (${result.reason}) after ${result.messages} vhost-user messages and ${result.requests} FUSE requests`);
  if (result.reason === 'crashed') throw new CliError(`the data plane stopped unexpectedly: ${result.error?.message ?? 'unknown error'}`);
  if (result.reason === 'protocol-error') {
    process.stderr.write(`virtiofs-ts serve: the frontend broke the vhost-user protocol: ${result.error?.message ?? ''}\n`);
    return 1;
  }
  return 0;
}

/** '1G', '512M', '2097152' -> bytes (binary units). */
function parseByteSize(s: string): number {
  const m = /^(\d+)([kKmMgG]?)(i?[bB])?$/.exec(s.trim());
  if (!m) throw new RangeError(`not a size: '${s}' (use e.g. 64M, 1G)`);
  return Number(m[1]) * { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
}
