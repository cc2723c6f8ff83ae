// Layer: transport. Messages between the vhost-user control plane (main
// thread, vhost-user-device.ts) and its data-plane worker
// (vhost-user-device-worker.ts). Types only; imports fs/backend-spec.ts.
import type { MessagePort } from 'node:worker_threads';
import type { BackendSpec } from '../fs/backend-spec.ts';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];

export interface VhostWorkerData {
  backend: BackendSpec;
  numQueues: number;
  /** eventfd the control plane signals after posting a message (the worker sleeps in epoll). */
  controlFd: number;
  /** Int32 cell the control plane sets to 1 before signalling controlFd, so a polling data plane stops spinning. */
  controlFlag: SharedArrayBuffer;
  /** Longest adaptive poll of a request queue after a batch, in µs (0 = never poll). */
  pollUs: number;
  port: MessagePort;
  logLevel: LogLevel;
  maxWrite?: number;
  /** DAX window bytes (shared memory region 0); absent: no window, SETUPMAPPING answers ENOSYS. */
  daxWindow?: number;
}

/** A guest memory region with the fd to map (the worker maps it and closes the fd). */
export interface RegionMsg {
  gpa: number;
  size: number;
  uva: number;
  mmapOffset: number;
  fd: number;
}

/** A control request, before it gets its id. */
export type ControlMsg =
  | { t: 'mem'; regions: RegionMsg[] }
  | { t: 'add-region'; region: RegionMsg }
  | { t: 'remove-region'; gpa: number; size: number; uva: number }
  | { t: 'features'; eventIdx: boolean; indirect: boolean }
  | { t: 'num'; index: number; num: number }
  | { t: 'addr'; index: number; desc: number; avail: number; used: number }
  | { t: 'base'; index: number; base: number }
  | { t: 'get-base'; index: number }
  | { t: 'kick' | 'call' | 'err'; index: number; fd: number }
  | { t: 'enable'; index: number; enabled: boolean }
  | { t: 'reset' }
  /** The backend request channel (SHMEM + BACKEND_SEND_FD + REPLY_ACK acked): the worker sends SHMEM_MAP/UNMAP on it. */
  | { t: 'backend-req'; fd: number }
  | { t: 'exit' };

export type ToWorker = ControlMsg & { id: number };

export type FromWorker =
  | { t: 'ready' }
  | { t: 'ack'; id: number; value?: number; error?: string }
  | { t: 'log'; level: LogLevel; msg: string }
  | { t: 'fatal'; message: string; stack?: string }
  | { t: 'stopped'; requests: number };
