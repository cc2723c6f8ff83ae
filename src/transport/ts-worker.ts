// Layer: transport. Starts a worker thread running a TypeScript module (see
// ts-worker-shim.mjs for why a shim is needed on Node 20). Imports node: only.
import { Worker, type WorkerOptions } from 'node:worker_threads';

const SHIM = new URL('./ts-worker-shim.mjs', import.meta.url);
/** This module was built into dist/ (npm run build): its sibling entries are .js files there. */
const BUILT = import.meta.url.endsWith('.js');

/**
 * Runs the TypeScript module at `entry` (a `.ts` URL next to the caller) on a
 * new worker thread; from a build in dist/ the emitted `.js` beside it runs
 * instead. The module reads its own data from `workerData.data`
 * (workerData.entry is the shim's).
 */
export function startTsWorker(entry: URL, data: unknown, options: Omit<WorkerOptions, 'workerData'> = {}): Worker {
  const href = BUILT && entry.href.endsWith('.ts') ? entry.href.slice(0, -3) + '.js' : entry.href;
  return new Worker(SHIM, { ...options, workerData: { entry: href, data } });
}
