// Test support: run `virtiofs-ts serve` as a real child process (the same
// binary a user runs) and wait for its socket; collect its stderr and exit code.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const BIN = new URL('../../bin/virtiofs-ts.js', import.meta.url).pathname;

export interface ServeDaemon {
  child: ChildProcess;
  /** stderr so far. */
  log(): string;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  kill(): void;
}

/** `inheritFd`: an fd of ours the child gets as its fd 3 (libvirt-style --fd 3). */
export async function startServe(args: string[], socketPath?: string, timeoutMs = 20000, inheritFd?: number): Promise<ServeDaemon> {
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe'];
  if (inheritFd !== undefined) stdio.push(inheritFd);
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { stdio });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((r) => child.on('exit', (code, sig) => r(code ?? sig ?? -1)));
  let gone = false;
  void exited.then(() => (gone = true));
  if (socketPath !== undefined) {
    const t0 = Date.now();
    while (!existsSync(socketPath)) {
      if (gone) throw new Error(`serve exited before listening:\n${err}`);
      if (Date.now() - t0 > timeoutMs) {
        child.kill('SIGKILL');
        throw new Error(`serve did not create ${socketPath} within ${timeoutMs} ms:\n${err}`);
      }
      await sleep(50);
    }
  }
  return {
    child,
    log: () => err,
    exited,
    kill: () => {
      if (!gone) child.kill('SIGKILL');
    },
  };
}
