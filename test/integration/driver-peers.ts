// Test support for the driver tests: start a real vhost-user-fs backend (our
// `virtiofs-ts serve`, or QEMU's C virtiofsd) on a fresh socket and directory.
// Each backend serves exactly one frontend, like a VM.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServe } from '../support/serve-daemon.ts';

export const C_VIRTIOFSD = '/usr/lib/qemu/virtiofsd';

export interface Peer {
  name: string;
  /** Start a backend serving `dir` on `sock`; resolves once the socket exists. */
  start(sock: string, dir: string): Promise<{ child: ChildProcess; log(): string; kill(): void }>;
  daxWindowBytes: number;
}

export const PEERS: Peer[] = [
  {
    name: 'our daemon (no DAX)',
    daxWindowBytes: 0,
    start: async (sock, dir) => startServe(['--socket-path', sock, '--shared-dir', dir], sock),
  },
  {
    name: 'our daemon (cache never: every walk looks up, nodes forgotten as they go)',
    daxWindowBytes: 0,
    start: async (sock, dir) => startServe(['--socket-path', sock, '--shared-dir', dir, '--cache', 'never'], sock),
  },
  {
    name: 'our daemon with a DAX window (serve --dax-window)',
    daxWindowBytes: 64 * 1024 * 1024,
    start: async (sock, dir) => startServe(['--socket-path', sock, '--shared-dir', dir, '--dax-window', '64M'], sock),
  },
  {
    name: "QEMU's C virtiofsd",
    daxWindowBytes: 0,
    start: async (sock, dir) => {
      if (!existsSync(C_VIRTIOFSD)) throw new Error(`${C_VIRTIOFSD} is missing: apt-get install qemu-system-x86 (7.2 ships the C virtiofsd)`);
      const child = spawn(C_VIRTIOFSD, [`--socket-path=${sock}`, '-o', `source=${dir}`, '-o', 'cache=auto', '-o', 'no_posix_lock'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let log = '';
      child.stdout!.on('data', (d: Buffer) => (log += d));
      child.stderr!.on('data', (d: Buffer) => (log += d));
      const t0 = Date.now();
      while (!existsSync(sock)) {
        if (child.exitCode !== null) throw new Error(`virtiofsd exited: ${log}`);
        if (Date.now() - t0 > 10_000) throw new Error(`virtiofsd did not listen: ${log}`);
        await sleep(30);
      }
      return { child, log: () => log, kill: () => { if (child.exitCode === null) child.kill('SIGKILL'); } };
    },
  },
];
