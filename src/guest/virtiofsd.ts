// Layer: guest tooling (host side). Imports node:* and src/guest/* only.
// Starts QEMU's C virtiofsd (the peer we compare against) on a socket and
// waits until it listens. It serves exactly one VM connection and exits when
// that VM goes away, so start one per guest boot.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { findCVirtiofsd } from './assets.ts';

export interface CVirtiofsdOptions {
  socketPath: string;
  sharedDir: string;
  cache?: 'none' | 'auto' | 'always';
  /** More `-o` options, e.g. ["xattr", "writeback"]. */
  options?: string[];
  /** How long to wait for the socket to appear; default 10 s. */
  startTimeoutMs?: number;
}

export type CVirtiofsd = SocketDaemon;

/** A vhost-user daemon started as a child process and listening on its socket. */
export interface SocketDaemon {
  socketPath: string;
  process: ChildProcess;
  /** Resolves with the exit status once the daemon has exited. */
  exited: Promise<number | null>;
  /** Daemon's stderr so far (the last 256 KiB). */
  log(): string;
  /** SIGTERM, then SIGKILL after 3 s; resolves once it has exited. */
  stop(): Promise<void>;
}

/**
 * Spawns `file args` and waits until `socketPath` exists. A daemon that exits
 * first, or is too slow, is killed and reported through `fail(message)`, with
 * its log, so the caller picks the error type.
 */
export async function spawnSocketDaemon(o: {
  file: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  socketPath: string;
  startTimeoutMs?: number;
  name: string;
  fail: (message: string) => Error;
}): Promise<SocketDaemon> {
  const child = spawn(o.file, o.args, { stdio: ['ignore', 'ignore', 'pipe'], env: o.env ?? process.env });
  let log = '';
  child.stderr!.on('data', (c: Buffer) => {
    log += c.toString('utf8');
    if (log.length > 256 * 1024) log = log.slice(-256 * 1024);
  });
  let status: number | null | undefined;
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (e) => {
      log += `\n${e.message}`;
      status = null;
      resolve(null);
    });
    child.on('close', (code) => {
      status = code;
      resolve(code);
    });
  });
  const deadline = performance.now() + (o.startTimeoutMs ?? 10_000);
  while (!existsSync(o.socketPath)) {
    if (status !== undefined) throw o.fail(`${o.name} exited (${status}) before listening on ${o.socketPath}:\n${log}`);
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw o.fail(`${o.name} did not create ${o.socketPath} in time:\n${log}`);
    }
    await sleep(20);
  }
  return {
    socketPath: o.socketPath,
    process: child,
    exited,
    log: () => log,
    async stop() {
      if (status !== undefined) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    },
  };
}

export async function startCVirtiofsd(o: CVirtiofsdOptions): Promise<CVirtiofsd> {
  const bin = findCVirtiofsd();
  const args = [`--socket-path=${o.socketPath}`, '-o', `source=${o.sharedDir}`, '-o', `cache=${o.cache ?? 'auto'}`];
  for (const opt of o.options ?? []) args.push('-o', opt);
  return spawnSocketDaemon({ file: bin, args, socketPath: o.socketPath, startTimeoutMs: o.startTimeoutMs, name: bin, fail: (m) => new Error(m) });
}
