// Layer: transport. Starts a worker thread running a TypeScript module (see
// ts-worker-shim.mjs for why a shim is needed on Node 20). Imports node: only.
import { Worker, type WorkerOptions } from 'node:worker_threads';

const SHIM = new URL('./ts-worker-shim.mjs', import.meta.url);

/**
 * Runs the TypeScript module at `entry` on a new worker thread. The module
 * reads its own data from `workerData.data` (workerData.entry is the shim's).
 */
export function startTsWorker(entry: URL, data: unknown, options: Omit<WorkerOptions, 'workerData'> = {}): Worker {
  return new Worker(SHIM, { ...options, workerData: { entry: entry.href, data } });
}
