// Layer: transport (control plane of the /dev/fuse transport). Opens the
// device, mounts it, and hands the fd to a data-plane worker (devfuse-worker.ts)
// that owns the FuseServer and the backend. Imports sys/mount.ts, node: modules
// and the worker protocol; only cli/ imports this file.
//
// Lifecycle:
//   open /dev/fuse -> worker builds the backend ('ready') -> mount(2) ->
//   worker serves ('initialized' after FUSE_INIT) -> unmount() or an outside
//   umount -> the kernel aborts the connection -> the worker's read(2) gets
//   ENODEV -> 'stopped' -> the fd is closed, `done` resolves.
import { closeSync, openSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { MNT_DETACH, MS_NODEV, MS_NOSUID, MS_RDONLY, mount, umount2 } from '../sys/mount.ts';
import { errnoName } from '../sys/errors.ts';
import type { BackendSpec } from '../fs/backend-spec.ts';
import type { DevFuseWorkerData, FromWorker, LogLevel, ToWorker } from './devfuse-protocol.ts';
import { startTsWorker } from './ts-worker.ts';

export type { LogLevel } from './devfuse-protocol.ts';

export const FUSE_FSTYPE = 'fuse.virtiofs-ts';

export interface DevFuseOptions {
  mountpoint: string;
  backend: BackendSpec;
  /** The "source" column of the mount table (default: the shared dir, or 'memory'). */
  source?: string;
  maxWrite?: number;
  logLevel?: LogLevel;
  log?: (level: LogLevel, msg: string) => void;
}

export interface StopResult {
  reason: 'unmounted' | 'aborted' | 'crashed';
  requests: number;
  error?: Error;
}

export interface DevFuseSession {
  readonly mountpoint: string;
  /** Resolves once the kernel answered FUSE_INIT. */
  readonly initialized: Promise<void>;
  /** Resolves when serving has ended and the fd is closed. Never rejects. */
  readonly done: Promise<StopResult>;
  /**
   * Asks the kernel to unmount: a plain umount first, a lazy (MNT_DETACH) one
   * when the mount is busy, so open files keep working until closed. Serving
   * ends when the kernel drops the connection.
   */
  unmount(): void;
  /**
   * Detaches the mount and closes our end of /dev/fuse. A worker blocked in
   * read(2) keeps the device open and cannot be stopped from JavaScript, so
   * the caller must then end the process (sys/process.ts exitNow): the kernel
   * aborts the connection when the last reference goes and users of the
   * detached mount get ENOTCONN.
   */
  abort(): void;
}

/** A failure to set up the mount, with a message meant for a person. */
export class DevFuseError extends Error {
  override readonly name = 'DevFuseError';
  constructor(message: string, readonly errno?: number) {
    super(message);
  }
}

function mountData(fd: number): string {
  // default_permissions: the kernel checks modes against the attributes we
  // return, as for a local fs. allow_other: every user may use the mount.
  return `fd=${fd},rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other`;
}

export async function startDevFuse(opts: DevFuseOptions): Promise<DevFuseSession> {
  const log = opts.log ?? (() => {});
  let fd: number;
  try {
    fd = openSync('/dev/fuse', 'r+');
  } catch (err) {
    throw new DevFuseError(`cannot open /dev/fuse: ${(err as Error).message}`, (err as { errno?: number }).errno);
  }

  const data: DevFuseWorkerData = {
    fd,
    backend: opts.backend,
    logLevel: opts.logLevel ?? 'warn',
    ...(opts.maxWrite !== undefined ? { maxWrite: opts.maxWrite } : {}),
  };
  const worker: Worker = startTsWorker(new URL('./devfuse-worker.ts', import.meta.url), data);

  let fdOpen = true;
  const closeFd = () => {
    if (fdOpen) {
      fdOpen = false;
      closeSync(fd);
    }
  };
  let mounted = false;
  let initResolve!: () => void;
  const initialized = new Promise<void>((r) => (initResolve = r));
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  let stopped: StopResult | undefined;
  let doneResolve!: (r: StopResult) => void;
  const done = new Promise<StopResult>((r) => (doneResolve = r));

  worker.on('message', (m: FromWorker) => {
    switch (m.type) {
      case 'ready':
        readyResolve();
        break;
      case 'initialized':
        initResolve();
        break;
      case 'log':
        log(m.level, m.msg);
        break;
      case 'fatal': {
        const err = new Error(m.message);
        if (m.stack) err.stack = m.stack;
        stopped ??= { reason: 'crashed', requests: 0, error: err };
        readyReject(err);
        break;
      }
      case 'stopped':
        stopped ??= { reason: m.reason, requests: m.requests };
        break;
    }
  });
  worker.on('error', (err) => {
    stopped ??= { reason: 'crashed', requests: 0, error: err };
    readyReject(err);
  });
  worker.on('exit', (code) => {
    if (!stopped) stopped = { reason: 'crashed', requests: 0, error: new Error(`data-plane worker exited with code ${code}`) };
    readyReject(stopped.error ?? new Error('data-plane worker stopped before it was ready'));
    // A crashed worker leaves the connection alive with nobody serving it:
    // closing the device fd aborts it (clients get ENOTCONN), then detach.
    closeFd();
    if (mounted && stopped.reason === 'crashed') detach(opts.mountpoint);
    doneResolve(stopped);
  });

  try {
    await ready;
  } catch (err) {
    await done;
    throw new DevFuseError(`cannot start the ${opts.backend.kind} backend: ${(err as Error).message}`);
  }

  let flags = MS_NODEV | MS_NOSUID;
  if (opts.backend.readonly) flags |= MS_RDONLY;
  const source = opts.source ?? (opts.backend.kind === 'memory' ? 'memory' : opts.backend.sharedDir ?? 'virtiofs-ts');
  try {
    mount(source, opts.mountpoint, FUSE_FSTYPE, flags, mountData(fd));
    mounted = true;
  } catch (err) {
    const errno = (err as { errno?: number }).errno;
    // The worker never started reading; closing the fd makes nothing wait on it.
    await worker.terminate();
    await done;
    throw new DevFuseError(`mount(2) on ${opts.mountpoint} failed: ${errno ? errnoName(errno) : (err as Error).message}`, errno);
  }
  worker.postMessage({ type: 'start' } satisfies ToWorker);

  return {
    mountpoint: opts.mountpoint,
    initialized,
    done,
    unmount() {
      if (stopped) return;
      try {
        umount2(opts.mountpoint, 0);
      } catch (err) {
        const errno = (err as { errno?: number }).errno;
        if (errno !== undefined && errnoName(errno) === 'EBUSY') {
          log('info', `${opts.mountpoint} is busy; detaching it (serving continues until its users close it)`);
          detach(opts.mountpoint);
        } else if (errno !== undefined && errnoName(errno) === 'EINVAL') {
          // Not mounted any more (someone else unmounted it): the worker sees ENODEV.
        } else {
          throw err;
        }
      }
    },
    abort() {
      if (mounted) detach(opts.mountpoint);
      closeFd();
    },
  };
}

function detach(mountpoint: string): void {
  try {
    umount2(mountpoint, MNT_DETACH);
  } catch {
    // Already gone.
  }
}
