// Layer: guest tooling (host side). Imports node:* and src/guest/* only; it
// never starts a daemon itself: callers hand it the vhost-user socket of
// whichever backend they want to exercise (ours or QEMU's C virtiofsd).
// Boots a throwaway Linux guest under QEMU (TCG: KVM does not work on these
// machines) with a vhost-user-fs-pci device on that socket, runs one command
// and returns its output and exit status, read back from the serial console
// (markers described in initramfs.ts).

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findQemu, stderrProgress, type Progress } from './assets.ts';
import { buildRunLayer, concatLayers, ensureBaseInitramfs, shQuote } from './initramfs.ts';
import { ensureFioImage } from './tools.ts';

/** How to start QEMU: a binary, or a loader command plus environment (e.g. a private newer QEMU). */
export interface QemuCommand {
  file: string;
  /** Arguments placed before ours (e.g. `--library-path ... qemu-system-x86_64 -L ...`). */
  prefixArgs?: string[];
  env?: Record<string, string>;
}

export interface GuestBootOptions {
  /** The vhost-user-fs backend's listening socket (the daemon must already be listening). */
  socketPath: string;
  /** virtio-fs tag (1..36 bytes); default "vfts". */
  tag?: string;
  /** Guest RAM, shared with the daemon through a memfd; default 512. */
  memoryMiB?: number;
  /** Guest vCPUs; default 1. */
  cpus?: number;
  /** Whole-run limit, boot included; default 120 s (TCG boots take 5-10 s on an idle host). */
  timeoutMs?: number;
  /** qemu-system-x86_64 to use (default: VIRTIOFS_TS_QEMU or PATH). */
  qemuBinary?: string;
  /** Full control over how QEMU starts; wins over qemuBinary. */
  qemu?: QemuCommand;
  /** Appended to the kernel command line. */
  extraKernelArgs?: string;
  /** Appended to QEMU's arguments. */
  extraQemuArgs?: string[];
  /**
   * Replaces the virtio-fs `-device` value; the chardev is `vfts0`. For a DAX
   * window on a newer QEMU, e.g.
   * "vhost-user-test-device-pci,virtio-id=26,num_vqs=2,vq_size=1024,config_size=40,chardev=vfts0"
   * (the backend then serves the tag in its config space).
   */
  fsDevice?: string;
  /** `mount -o` options for the virtio-fs mount (e.g. "dax=always"). */
  mountOptions?: string;
  /** Adds Debian's fio (/usr/bin/fio) and its libraries to the guest, on a read-only tools disk. */
  withFio?: boolean;
  /** Log guest uptime at each /init step into bootLog ("@@vft-trace <s> <step>"). */
  traceBoot?: boolean;
  /** Extra files placed in the guest's initramfs before the command runs (e.g. a static test binary). */
  files?: ReadonlyArray<{ path: string; data: Uint8Array; mode?: number }>;
  /** Receives the command's output as it arrives (not the boot log). */
  onOutput?: (chunk: Buffer) => void;
  /** Keep the output for the result (default true); false when streaming only (long outputs). */
  collectOutput?: boolean;
  /** One line per setup step (downloads, builds); default stderr. */
  progress?: Progress;
  signal?: AbortSignal;
}

export interface GuestRunOptions extends GuestBootOptions {
  /** A busybox sh script, run with the share mounted at `mountpoint` and as cwd. */
  command: string;
  /** Where the share is mounted in the guest; default /mnt. */
  mountpoint?: string;
}

export interface GuestResult {
  exitCode: number;
  /** The command's stdout+stderr, decoded as UTF-8. */
  output: string;
  outputBytes: Buffer;
  /** From spawning QEMU to the command starting (kernel boot, modules, mount). */
  bootMs: number;
  /** From spawning QEMU to the command's first output byte (undefined if it printed nothing): boot-to-prompt time. */
  firstOutputMs?: number;
  /** From spawning QEMU to QEMU exiting. */
  totalMs: number;
  /** Everything the console printed before the command started, plus QEMU's stderr. */
  bootLog: string;
}

/** The guest did not run the command to completion. `consoleTail` holds the last console lines. */
export class GuestError extends Error {
  override name = 'GuestError';
  constructor(
    message: string,
    readonly consoleTail: string,
  ) {
    super(consoleTail ? `${message}\n--- last guest console lines ---\n${consoleTail}\n---` : message);
  }
}

export class GuestTimeoutError extends GuestError {
  override name = 'GuestTimeoutError';
}

const DEFAULT_TAG = 'vfts';

/** Boots a guest, mounts the share at `mountpoint` (default /mnt) and runs `command` there. */
export async function runInGuest(options: GuestRunOptions): Promise<GuestResult> {
  const mountpoint = options.mountpoint ?? '/mnt';
  return bootGuest({ ...options, mode: 'exec', mountpoint, cwd: mountpoint, script: options.command });
}

export interface GuestRootRunOptions extends GuestBootOptions {
  /** The command and its arguments, run with the share as the root file system (`/`). */
  argv: string[];
  /** Give the command the serial console as its controlling terminal, wired to this process's stdin. */
  interactive?: boolean;
}

/**
 * Boots a guest whose root file system is the share: /init mounts it, binds
 * /proc, /sys and /dev into it (where those directories exist) and runs argv
 * chrooted there. What `virtiofs-ts run` does; the boot-time benchmark too.
 */
export async function runInGuestRoot(options: GuestRootRunOptions): Promise<GuestResult> {
  if (options.argv.length === 0) throw new Error('runInGuestRoot: argv is empty');
  const mountpoint = '/newroot';
  const script = `export HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nexec chroot ${mountpoint} ${options.argv.map(shQuote).join(' ')}\n`;
  return bootGuest({ tag: 'rootfs', ...options, mode: 'root', mountpoint, cwd: mountpoint, script });
}

/** The general entry behind runInGuest and runInGuestRoot. */
export interface BootSpec extends GuestBootOptions {
  mode: 'exec' | 'root';
  mountpoint: string;
  cwd: string;
  script: string;
  /** Serial console wired to this process's stdin (a terminal): the command gets a controlling tty. */
  interactive?: boolean;
}

export function qemuArgs(o: { kernel: string; initrd: string; socketPath: string; tag: string; memoryMiB: number; cpus: number; interactive: boolean; toolsImage?: string; fsDevice?: string; extraKernelArgs?: string; extraQemuArgs?: string[] }): string[] {
  const append = ['console=ttyS0', 'quiet', 'panic=-1', o.extraKernelArgs ?? ''].filter(Boolean).join(' ');
  return [
    '-accel', 'tcg,thread=multi',
    '-cpu', 'max',
    '-smp', String(o.cpus),
    '-m', `${o.memoryMiB}M`,
    // No default NIC/VGA/drives: less to probe, faster boot.
    '-nodefaults', '-no-user-config', '-display', 'none',
    // Interactive: Ctrl-A x still reaches QEMU's monitor mux to kill a stuck guest.
    '-serial', o.interactive ? 'mon:stdio' : 'stdio',
    '-no-reboot',
    '-kernel', o.kernel,
    '-initrd', o.initrd,
    '-append', append,
    '-chardev', `socket,id=vfts0,path=${o.socketPath}`,
    '-device', o.fsDevice ?? `vhost-user-fs-pci,queue-size=1024,chardev=vfts0,tag=${o.tag}`,
    // vhost-user needs guest RAM the daemon can map: a shared memfd.
    '-object', `memory-backend-memfd,id=mem,size=${o.memoryMiB}M,share=on`,
    '-numa', 'node,memdev=mem',
    ...(o.toolsImage
      ? ['-drive', `file=${o.toolsImage},if=none,id=vftools,format=raw,readonly=on`, '-device', 'virtio-blk-pci,drive=vftools']
      : []),
    ...(o.extraQemuArgs ?? []),
  ];
}

const TAIL_LINES = 30;
const BOOT_LOG_MAX = 1024 * 1024;

function tailLines(text: string, n = TAIL_LINES): string {
  const lines = text.replace(/\r/g, '').split('\n');
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.slice(-n).join('\n');
}

export async function bootGuest(spec: BootSpec): Promise<GuestResult> {
  const progress = spec.progress ?? stderrProgress;
  const tag = spec.tag ?? DEFAULT_TAG;
  const memoryMiB = spec.memoryMiB ?? 512;
  const cpus = spec.cpus ?? 1;
  const timeoutMs = spec.timeoutMs ?? 120_000;
  if (!Number.isInteger(memoryMiB) || memoryMiB < 64) throw new Error(`guest memory must be an integer of at least 64 MiB, got ${memoryMiB}`);
  if (!Number.isInteger(cpus) || cpus < 1) throw new Error(`guest cpus must be a positive integer, got ${cpus}`);
  const qemu: QemuCommand = spec.qemu ?? { file: spec.qemuBinary ?? findQemu() };
  const base = ensureBaseInitramfs({ progress });
  const layers: Uint8Array[] = [readFileSync(base.path)];
  const toolsImage = spec.withFio ? ensureFioImage(progress) : undefined;
  const nonce = randomBytes(8).toString('hex');
  layers.push(
    buildRunLayer({
      nonce,
      mode: spec.mode,
      tag,
      mountpoint: spec.mountpoint,
      mountOptions: spec.mountOptions,
      cwd: spec.cwd,
      script: spec.script,
      interactive: spec.interactive,
      tools: toolsImage !== undefined,
      trace: spec.traceBoot,
      files: spec.files,
      term: spec.interactive ? process.env.TERM : undefined,
      ttySize: spec.interactive && process.stdout.isTTY ? { rows: process.stdout.rows, cols: process.stdout.columns } : undefined,
    }),
  );
  if (!existsSync(spec.socketPath)) throw new Error(`no vhost-user socket at ${spec.socketPath}: start the daemon before booting the guest`);

  const work = mkdtempSync(join(tmpdir(), 'vfts-guest-'));
  try {
    const initrd = join(work, 'initrd.img');
    writeFileSync(initrd, concatLayers(layers));
    const args = [
      ...(qemu.prefixArgs ?? []),
      ...qemuArgs({ kernel: base.kernel.vmlinuz, initrd, socketPath: spec.socketPath, tag, memoryMiB, cpus, interactive: spec.interactive ?? false, toolsImage, fsDevice: spec.fsDevice, extraKernelArgs: spec.extraKernelArgs, extraQemuArgs: spec.extraQemuArgs }),
    ];
    return await supervise(qemu, args, nonce, timeoutMs, spec);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function supervise(qemu: QemuCommand, args: string[], nonce: string, timeoutMs: number, spec: BootSpec): Promise<GuestResult> {
  const begin = Buffer.from(`@@vft:${nonce}:BEGIN@@`);
  const errorMark = Buffer.from(`@@vft:${nonce}:ERROR `);
  const exitMark = Buffer.from(`@@vft:${nonce}:EXIT `);
  const start = performance.now();
  // QEMU puts an inherited terminal in raw mode and restores it only on a clean
  // exit; a SIGKILLed QEMU (timeout, abort) would leave the user's terminal raw.
  const savedTty = spec.interactive ? spawnSync('stty', ['-g'], { stdio: ['inherit', 'pipe', 'ignore'] }).stdout?.toString().trim() : undefined;
  const restoreTty = () => {
    if (savedTty) spawnSync('stty', [savedTty], { stdio: ['inherit', 'ignore', 'ignore'] });
  };
  return new Promise<GuestResult>((resolve, reject) => {
    const child = spawn(qemu.file, args, {
      stdio: [spec.interactive ? 'inherit' : 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...qemu.env },
    });
    let phase: 'boot' | 'command' | 'done' = 'boot';
    let bootLog = Buffer.alloc(0); // console before BEGIN (kept whole: it is small)
    let pending = Buffer.alloc(0); // command output not yet handed on (may hold a partial marker)
    const output: Buffer[] = [];
    const collect = spec.collectOutput ?? true;
    let tail = Buffer.alloc(0); // last output bytes when not collecting, for error messages
    let stderr = '';
    let bootMs = 0;
    let exitCode: number | undefined;
    let guestError: string | undefined;
    let failure: GuestError | undefined;
    let settled = false;

    const consoleText = () => `${bootLog.toString('utf8')}${Buffer.concat([...(collect ? output.slice(-20) : [tail]), pending]).toString('utf8')}${stderr ? `\n[qemu stderr] ${stderr}` : ''}`;
    let firstOutputMs: number | undefined;
    let pendingSince: number | undefined; // when the oldest held-back byte arrived
    const emit = (b: Buffer) => {
      if (b.length === 0) return;
      firstOutputMs ??= (pendingSince ?? performance.now()) - start;
      if (collect) output.push(b);
      else tail = Buffer.concat([tail, b]).subarray(-16 * 1024);
      spec.onOutput?.(b);
    };

    const onData = (chunk: Buffer) => {
      if (phase === 'boot') {
        bootLog = Buffer.concat([bootLog, chunk]);
        // A guest spewing without ever starting the command must not eat the host's memory.
        if (bootLog.length > BOOT_LOG_MAX) bootLog = bootLog.subarray(-BOOT_LOG_MAX);
        const e = bootLog.indexOf(errorMark);
        if (e >= 0) {
          const end = bootLog.indexOf('@@', e + errorMark.length);
          if (end >= 0) {
            guestError = bootLog.toString('utf8', e + errorMark.length, end);
            phase = 'done';
          }
          return;
        }
        const b = bootLog.indexOf(begin);
        if (b < 0) return;
        let rest = b + begin.length;
        // Need the line end to know where output starts; wait for more bytes if it has not arrived.
        if (rest < bootLog.length && bootLog[rest] === 0x0d) rest++;
        if (rest >= bootLog.length) return;
        if (bootLog[rest] === 0x0a) rest++;
        bootMs = performance.now() - start;
        pending = bootLog.subarray(rest);
        bootLog = bootLog.subarray(0, b);
        phase = 'command';
        chunk = Buffer.alloc(0);
      }
      if (phase !== 'command') return;
      pending = Buffer.concat([pending, chunk]);
      if (pending.length > 0) pendingSince ??= performance.now();
      const x = pending.indexOf(exitMark);
      if (x >= 0) {
        const end = pending.indexOf('@@', x + exitMark.length);
        if (end < 0) return;
        exitCode = Number(pending.toString('latin1', x + exitMark.length, end));
        // /init printed "\n" (or "\r\n" with output processing on) before the marker.
        let cut = x;
        if (cut > 0 && pending[cut - 1] === 0x0a) cut--;
        if (cut > 0 && pending[cut - 1] === 0x0d) cut--;
        emit(pending.subarray(0, cut));
        pending = Buffer.alloc(0);
        phase = 'done';
        // The guest powers off right after; give it a moment, then insist.
        setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
        return;
      }
      // Hold back what could be the start of the marker (plus its leading "\r\n").
      const keep = exitMark.length + 2;
      if (pending.length > keep) {
        emit(pending.subarray(0, pending.length - keep));
        pending = pending.subarray(pending.length - keep);
      }
    };

    child.stdout!.on('data', onData);
    child.stderr!.on('data', (c: Buffer) => {
      stderr += c.toString('utf8');
      if (stderr.length > 64 * 1024) stderr = stderr.slice(-64 * 1024);
    });

    const timer = setTimeout(() => {
      failure = new GuestTimeoutError(`guest did not finish within ${timeoutMs} ms (phase: ${phase === 'boot' ? 'booting' : 'running the command'}); QEMU killed`, tailLines(consoleText()));
      child.kill('SIGKILL');
    }, timeoutMs);
    const onAbort = () => {
      failure = new GuestError('guest run aborted; QEMU killed', tailLines(consoleText()));
      child.kill('SIGKILL');
    };
    spec.signal?.addEventListener('abort', onAbort, { once: true });
    if (spec.signal?.aborted) onAbort();

    const finish = (err: Error | undefined, result?: GuestResult) => {
      if (settled) return;
      settled = true;
      restoreTty();
      clearTimeout(timer);
      spec.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(result!);
    };

    child.on('error', (e) => finish(new GuestError(`cannot start QEMU (${qemu.file}): ${e.message}`, '')));
    child.on('close', (code, signal) => {
      const totalMs = performance.now() - start;
      if (failure) return finish(failure);
      if (exitCode !== undefined && Number.isInteger(exitCode)) {
        const outputBytes = Buffer.concat(output);
        return finish(undefined, {
          exitCode,
          output: outputBytes.toString('utf8'),
          outputBytes,
          bootMs,
          ...(firstOutputMs !== undefined ? { firstOutputMs } : {}),
          totalMs,
          bootLog: `${bootLog.toString('utf8')}${stderr ? `\n[qemu stderr] ${stderr}` : ''}`,
        });
      }
      const why = guestError
        ? `guest setup failed: ${guestError}`
        : `QEMU exited (${signal ? `signal ${signal}` : `status ${code}`}) before the command ${phase === 'boot' ? 'started' : 'finished'}`;
      finish(new GuestError(why, tailLines(consoleText())));
    });
  });
}
