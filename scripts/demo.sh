#!/usr/bin/env bash
# The main job on the embedded default: sets up what is missing (npm deps, the
# Debian packages for QEMU and the guest, the guest kernel), then boots a Linux
# microVM whose root file system is a host directory served by our vhost-user
# daemon (`virtiofs-ts run`): the guest writes a file, and the host shows it.
#   npm run demo               the microVM demo (default)
#   npm run demo -- devfuse    the /dev/fuse demo instead (`virtiofs-ts demo`)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then exec sudo -E "$0" "$@"; fi
  echo "demo: needs root (FUSE mounts, apt); run this as root" >&2
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

if [ "${1:-}" = devfuse ]; then
  shift
  [ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
  command -v fusermount3 >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update; apt-get install -y --no-install-recommends fuse3; }
  exec node bin/virtiofs-ts.js demo "$@"
fi

# QEMU, a static busybox, mke2fs, fio, then the Debian cloud kernel and the
# initramfs (cached in .cache/guest/; later runs skip all of this).
bash scripts/setup-guest.sh

echo
echo "== Booting a microVM whose root file system is .cache/guest/rootfs, served by our daemon =="
stamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)
node bin/virtiofs-ts.js run --memory 512M -- sh -c "
  echo \"guest kernel: \$(uname -r)\"
  echo 'root file system:'; grep -E ' / |virtiofs' /proc/mounts | head -3
  echo 'hello from the guest at $stamp' > /root/hello-from-guest.txt
  echo 'guest wrote /root/hello-from-guest.txt'
  ls -l /root
"
echo
echo "== Back on the host: the guest's file in the shared root =="
cat .cache/guest/rootfs/root/hello-from-guest.txt
