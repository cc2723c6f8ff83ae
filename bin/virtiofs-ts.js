#!/usr/bin/env node
// The package's `bin`. Runs the CLI from dist/ when `npm run build` (or
// `npm ci`, through `prepare`) made it and no source changed since, else the
// TypeScript in place through tsx, so `npx virtiofs-ts` works in any
// checkout (see cli-entry.js). tsx's register() API installs its loader in
// this process (no re-spawn, so signals reach the CLI directly); worker
// threads start through src/transport/ts-worker-shim.mjs.
import { loadCli } from './cli-entry.js';

const { main } = await loadCli();
process.exitCode = await main(process.argv.slice(2));
