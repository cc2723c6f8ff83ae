// Layer: cli. `virtiofs-ts run`: boot a throwaway Linux microVM (QEMU, TCG)
// whose root file system is a host directory served over virtio-fs, run one
// command in it, stream its output and exit with its status.
import { mkdtempSync, realpathSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GuestSetupError } from '../../guest/assets.ts';
import { GuestError, GuestTimeoutError, runInGuestRoot } from '../../guest/qemu.ts';
import { ensureDefaultRootfs } from '../../guest/rootfs.ts';
import { startCVirtiofsd } from '../../guest/virtiofsd.ts';
import { oneOf, parseCommandArgs } from '../args.ts';
import { CliError, UsageError } from '../errors.ts';

export const summary = 'boot a microVM whose root fs is a host directory served over virtio-fs, run a command in it';

export const help = `Usage: virtiofs-ts run [options] [-- CMD [ARGS...]]

Boots a small Linux guest under QEMU (software emulation) whose root file
system is a host directory served over virtio-fs, runs CMD in it (default
/bin/sh), streams its output and exits with its status. The first run
downloads Debian's cloud kernel with apt and builds the guest pieces into
.cache/guest/ (override with VIRTIOFS_TS_GUEST_CACHE); later runs reuse them.
With a terminal on stdin and stdout, CMD gets the console as its terminal
(Ctrl-A x kills the VM, Ctrl-A a sends a Ctrl-A).

Options:
  --root DIR                the root file system (default: a small busybox root
                            fs that virtiofs-ts builds once in its cache dir)
  --memory SIZE             guest RAM, e.g. 512M or 1G (default 512M)
  --cpus N                  guest vCPUs (default 1)
  --daemon ours|virtiofsd   who serves DIR: our vhost-user backend in this
                            process (default), or QEMU's C virtiofsd (needs root)
  --cache never|auto|always the daemon's cache mode (default auto)
  --readonly                the guest cannot change DIR: our daemon refuses every
                            change (EROFS) and the guest mounts it read-only
                            (the C virtiofsd has no such mode: guest-side only)
  --qemu system|11.1        which QEMU boots the guest: the system's
                            qemu-system-x86_64 with vhost-user-fs-pci (default
                            without --dax-window), or QEMU 11.1 from Debian's
                            trixie-backports, fetched once into .cache/peers/
                            (VIRTIOFS_TS_PEERS_CACHE) without touching the
                            system's apt; with our daemon it uses the generic
                            vhost-user device (the tag comes from the daemon)
  --dax-window SIZE         DAX: our daemon offers a window of SIZE (e.g. 256M, a
                            multiple of 2M) and the guest mounts the root with
                            dax=always. Needs QEMU 11.1 (its generic vhost-user
                            device), fetched once into .cache/peers/ from
                            Debian's archive without touching the system
  --timeout SECONDS         kill the VM after this long and exit 124 (default: none)
  --no-tty                  never give CMD the console as a terminal
  --verbose                 say what is happening, and the boot time
  --debug                   stack traces on errors (also VIRTIOFS_TS_DEBUG=1)
  -h, --help                this text

Examples:
  virtiofs-ts run -- sh -c 'echo hello from the guest > /root/hello.txt; uname -a'
  cat .cache/guest/rootfs/root/hello.txt
  virtiofs-ts run --root /srv/debian-rootfs --memory 1G -- /bin/bash
`;

const options = {
  root: { type: 'string' },
  memory: { type: 'string' },
  cpus: { type: 'string' },
  daemon: { type: 'string' },
  cache: { type: 'string' },
  readonly: { type: 'boolean' },
  timeout: { type: 'string' },
  'dax-window': { type: 'string' },
  qemu: { type: 'string' },
  'no-tty': { type: 'boolean' },
  verbose: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const DAEMONS = ['ours', 'virtiofsd'] as const;
type DaemonKind = (typeof DAEMONS)[number];
const CACHES = ['never', 'auto', 'always'] as const;
const QEMUS = ['system', '11.1'] as const;
type Cache = (typeof CACHES)[number];

/** "512", "512M", "1G", "1.5G" -> MiB. */
export function parseMemory(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`--memory must look like 512M or 1G (got '${text}')`, 'run');
  const scale: Record<string, number> = { K: 1 / 1024, '': 1, M: 1, G: 1024, T: 1024 * 1024 };
  const mib = Number(m[1]) * scale[m[2]!.toUpperCase()]!;
  if (!Number.isInteger(mib) || mib < 64) throw new UsageError(`--memory must be a whole number of MiB, at least 64M (got '${text}')`, 'run');
  return mib;
}

interface RunningDaemon {
  socketPath: string;
  stop(): Promise<void>;
  log(): string;
}

async function startDaemon(kind: DaemonKind, rootDir: string, cache: Cache, readonly: boolean, socketPath: string, verbose: boolean, daxWindow?: number, genericDevice = false): Promise<RunningDaemon> {
  if (kind === 'virtiofsd') {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new CliError("QEMU's C virtiofsd needs root (it sandboxes itself in namespaces); run with sudo or use --daemon ours");
    }
    const d = await startCVirtiofsd({ socketPath, sharedDir: rootDir, cache: cache === 'never' ? 'none' : cache });
    return d;
  }
  // Our vhost-user-fs backend, in this process (its data plane runs on a worker thread).
  const { startVhostUserFsDevice } = await import('../../transport/vhost-user-device.ts');
  let log = '';
  const device = await startVhostUserFsDevice({
    socketPath,
    backend: { kind: 'passthrough', sharedDir: rootDir, readonly, cache, xattr: false, writeback: false },
    // The generic device (QEMU 11.1, DAX) reads the tag from our config space.
    ...(genericDevice ? { tag: 'rootfs' } : {}),
    ...(daxWindow !== undefined ? { daxWindow } : {}),
    logLevel: verbose ? 'info' : 'warn',
    log: (level, msg) => {
      const line = `${level}: ${msg}\n`;
      if (level !== 'debug') log = (log + line).slice(-64 * 1024);
      if ((verbose && level !== 'debug') || level === 'error') process.stderr.write(`virtiofs-ts: ${line}`);
    },
  });
  return {
    socketPath,
    log: () => log,
    async stop() {
      device.close();
      const r = await device.done;
      if (r.reason === 'crashed') process.stderr.write(`virtiofs-ts: the vhost-user backend crashed: ${r.error?.message ?? 'unknown error'}\n`);
    },
  };
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('run', argv, options);
  const memoryMiB = values.memory === undefined ? 512 : parseMemory(values.memory);
  const cpus = values.cpus === undefined ? 1 : Number(values.cpus);
  if (!Number.isInteger(cpus) || cpus < 1 || cpus > 64) throw new UsageError(`--cpus must be an integer from 1 to 64 (got '${values.cpus}')`, 'run');
  const daemon = oneOf('run', 'daemon', values.daemon, DAEMONS, 'ours');
  const cache = oneOf('run', 'cache', values.cache, CACHES, 'auto');
  let timeoutMs = 2 ** 31 - 1; // setTimeout's maximum: ~24 days, i.e. no limit
  if (values.timeout !== undefined) {
    const s = Number(values.timeout);
    if (!(s > 0) || s * 1000 > timeoutMs) throw new UsageError(`--timeout must be a positive number of seconds (got '${values.timeout}')`, 'run');
    timeoutMs = Math.round(s * 1000);
  }
  let daxWindow: number | undefined;
  if (values['dax-window'] !== undefined) {
    const m = /^(\d+)([KMG]?)(?:i?B)?$/i.exec(values['dax-window'].trim());
    daxWindow = m ? Number(m[1]) * { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'] : NaN;
    if (!(daxWindow! > 0) || daxWindow! % (2 * 1024 * 1024) !== 0) throw new UsageError(`--dax-window must be a size that is a multiple of 2M, e.g. 256M (got '${values['dax-window']}')`, 'run');
    if (daemon !== 'ours') throw new UsageError("--dax-window needs --daemon ours (QEMU's C virtiofsd has no DAX window)", 'run');
  }
  const qemuChoice = oneOf('run', 'qemu', values.qemu, QEMUS, daxWindow !== undefined ? '11.1' : 'system');
  if (daxWindow !== undefined && qemuChoice !== '11.1') throw new UsageError('--dax-window needs --qemu 11.1 (the system QEMU 7.2 has no DAX window for vhost-user)', 'run');
  // QEMU 11.1 + our daemon: the generic device (tag from our config space). QEMU's C
  // virtiofsd has no config space, so it keeps vhost-user-fs-pci on either QEMU.
  const genericDevice = qemuChoice === '11.1' && daemon === 'ours';
  const command = positionals.length > 0 ? positionals : ['/bin/sh'];
  const interactive = !values['no-tty'] && !!process.stdin.isTTY && !!process.stdout.isTTY;
  const say = (msg: string) => process.stderr.write(`virtiofs-ts: ${msg}\n`);
  const progress = (line: string) => process.stderr.write(`[guest] ${line}\n`);

  let rootDir: string;
  try {
    if (values.root !== undefined) {
      let st;
      try {
        st = statSync(values.root);
      } catch (e) {
        throw new CliError(`root ${values.root}: ${(e as { code?: string }).code ?? (e as Error).message}`);
      }
      if (!st.isDirectory()) throw new CliError(`root ${values.root} is not a directory`);
      rootDir = realpathSync(values.root);
    } else {
      rootDir = ensureDefaultRootfs(progress);
    }
  } catch (e) {
    if (e instanceof GuestSetupError) throw new CliError(e.message);
    throw e;
  }

  const work = mkdtempSync(join(tmpdir(), 'vfts-run-'));
  let d: RunningDaemon | undefined;
  // SIGINT/SIGTERM (non-interactive; a terminal's ^C goes to the guest): kill the VM, clean up, exit 130/143.
  const abort = new AbortController();
  let signalled: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    signalled = sig;
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A reader that goes away (`run ... | head`) is SIGPIPE for a shell command: stop the VM, exit 141.
  let outputGone = false;
  const onStdoutError = () => {
    outputGone = true;
    abort.abort();
  };
  process.stdout.on('error', onStdoutError);
  try {
    try {
      d = await startDaemon(daemon, rootDir, cache, !!values.readonly, join(work, 'vhost-user.sock'), !!values.verbose, daxWindow, genericDevice);
    } catch (e) {
      if (e instanceof CliError || e instanceof GuestSetupError) throw e;
      throw new CliError(`cannot start ${daemon === 'ours' ? 'our vhost-user backend' : "QEMU's C virtiofsd"} on ${rootDir}: ${(e as Error).message}`);
    }
    if (values.verbose) say(`serving ${rootDir} with ${daemon === 'ours' ? 'our vhost-user backend' : "QEMU's C virtiofsd"} (cache ${cache}); booting`);
    let dax = {};
    if (qemuChoice === '11.1') {
      // QEMU 11.1 from the private peers cache: its generic vhost-user device is the one that carries a DAX window.
      const { ensureNewQemu, genericFsDevice, qemuCommandOf } = await import('../../guest/peers.ts');
      const q = await ensureNewQemu({ progress });
      if (values.verbose) say(`QEMU ${q.version} from ${q.suite}, ${genericDevice ? 'generic vhost-user device' : 'vhost-user-fs-pci'}`);
      dax = { qemu: qemuCommandOf(q), ...(genericDevice ? { fsDevice: genericFsDevice() } : {}) };
    }
    const mountOptions = [values.readonly ? 'ro' : '', daxWindow !== undefined ? 'dax=always' : ''].filter(Boolean).join(',');
    const result = await runInGuestRoot({
      socketPath: d.socketPath,
      argv: command,
      ...dax,
      ...(mountOptions ? { mountOptions } : {}),
      memoryMiB,
      cpus,
      timeoutMs,
      interactive,
      progress,
      onOutput: (b) => {
        if (!outputGone) process.stdout.write(b);
      },
      collectOutput: false,
      signal: abort.signal,
    });
    if (values.verbose) say(`boot took ${(result.bootMs / 1000).toFixed(2)} s; ${command[0]} exited with status ${result.exitCode}`);
    return result.exitCode;
  } catch (e) {
    if (signalled) return signalled === 'SIGINT' ? 130 : 143;
    if (outputGone) return 141;
    if (e instanceof GuestSetupError) throw new CliError(e.message);
    if (e instanceof GuestTimeoutError) {
      // Like timeout(1): the time ran out, status 124.
      process.stderr.write(`virtiofs-ts: ${e.message}\n`);
      return 124;
    }
    if (e instanceof GuestError) throw new CliError(d ? `${e.message}${d.log() ? `\n--- daemon log tail ---\n${d.log().trimEnd().split('\n').slice(-10).join('\n')}` : ''}` : e.message);
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.stdout.off('error', onStdoutError);
    await d?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
