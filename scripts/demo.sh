#!/usr/bin/env bash
# The main job on the embedded default: sets up what is missing, then runs
# `virtiofs-ts demo` (mount the sample tree through /dev/fuse with our server,
# use it with ordinary tools, unmount). Extra arguments go to the demo command.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then exec sudo -E "$0" "$@"; fi
  echo "demo: mounting needs root; run this as root" >&2
  exit 1
fi
if ! command -v node >/dev/null; then
  echo "demo: Node.js 20 or newer is needed (https://nodejs.org or apt-get install nodejs)" >&2
  exit 1
fi
if [ ! -e node_modules/tsx/package.json ] || [ ! -e node_modules/koffi/package.json ]; then
  echo "demo: installing npm dependencies (npm ci)..."
  npm ci --no-audit --no-fund
fi
if [ ! -e /dev/fuse ]; then
  modprobe fuse 2>/dev/null || true
fi
exec node bin/virtiofs-ts.js demo "$@"
