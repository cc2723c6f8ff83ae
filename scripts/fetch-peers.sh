#!/usr/bin/env bash
# Fetches the newer peers virtiofs-ts is tested against, which bookworm lacks:
# QEMU 11.1 (Debian trixie-backports) and Rust virtiofsd 1.14 (sid), from the
# Debian archive the system's apt already uses, into .cache/peers/
# (VIRTIOFS_TS_PEERS_CACHE overrides) through a private apt state: the
# system's apt sources and dpkg state are never changed. Prints how to launch
# each one. Safe to re-run: a fetched peer is reused at once.
#   scripts/fetch-peers.sh [qemu] [virtiofsd]
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --import tsx src/guest/peers.ts "$@"
