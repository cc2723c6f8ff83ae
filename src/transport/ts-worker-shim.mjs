// Layer: transport (plain JS on purpose). Node 20 cannot start a Worker on a
// .ts file: a worker does not inherit the tsx hooks that `--import tsx` (or
// tsx's register() API) installed in the parent, so `new Worker('x.ts')` fails
// with "Unknown file extension .ts". This shim registers tsx inside the worker,
// then imports the real TypeScript entry named in workerData.entry. Resolving
// 'tsx/esm/api' from this file's location makes it independent of the cwd.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
