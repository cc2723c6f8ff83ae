#!/usr/bin/env node
// The package's `bin`: runs the TypeScript CLI in place, so `npx virtiofs-ts`
// works in a checkout after `npm ci` with no build step. tsx's register() API
// installs its loader in this process (no re-spawn, so signals reach the CLI
// directly); worker threads register it again themselves (src/transport/ts-worker-shim.mjs).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
