// Layer: transport. Messages between the /dev/fuse control thread
// (devfuse.ts) and its data-plane worker (devfuse-worker.ts). Types only.
import type { BackendSpec } from '../fs/backend-spec.ts';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface DevFuseWorkerData {
  /** The /dev/fuse fd, opened by the main thread (fds are process-wide). */
  fd: number;
  backend: BackendSpec;
  maxWrite?: number;
  /** Forward log lines at or above this level. */
  logLevel: LogLevel;
}

export type ToWorker = { type: 'start' };

export type FromWorker =
  | { type: 'ready' }
  | { type: 'initialized' }
  | { type: 'log'; level: LogLevel; msg: string }
  | { type: 'fatal'; message: string; stack?: string }
  | { type: 'stopped'; reason: 'unmounted' | 'aborted'; requests: number };

export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];
