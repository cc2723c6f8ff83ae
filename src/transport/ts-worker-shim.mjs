// Layer: transport (plain JS on purpose). Node 20 cannot start a Worker on a
// .ts file: a worker does not inherit the tsx hooks that `--import tsx` (or
// tsx's register() API) installed in the parent, so `new Worker('x.ts')` fails
// with "Unknown file extension .ts". This shim registers tsx inside the worker
// when the entry named in workerData.entry is TypeScript (running from the
// sources), then imports it; an entry built into dist/ (.js) is imported
// directly. Resolving 'tsx/esm/api' from this file's location makes it
// independent of the cwd.
import { workerData } from 'node:worker_threads';

if (workerData.entry.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(workerData.entry);
