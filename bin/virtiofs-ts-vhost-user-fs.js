#!/usr/bin/env node
// The vhost-user backend program of the conventions in QEMU's
// docs/interop/vhost-user.rst ("Backend program conventions"): the same as
// `virtiofs-ts serve`, under a name that share/vhost-user/50-virtiofs-ts.json
// points at, so libvirt/QEMU tooling can find it (--print-capabilities,
// --socket-path, --fd, and virtiofsd's options). dist/ or sources: cli-entry.js.
import { loadCli } from './cli-entry.js';

const { main } = await loadCli();
process.exitCode = await main(['serve', ...process.argv.slice(2)]);
