#!/usr/bin/env bash
# Prepares everything a virtio-fs test guest needs, from Debian packages only:
# installs QEMU, a static busybox, mke2fs and fio when missing (root, apt), then
# downloads the cloud kernel (apt-get download) and builds the initramfs, the
# default root fs of `virtiofs-ts run` and the fio tools disk into .cache/guest/
# (VIRTIOFS_TS_GUEST_CACHE overrides). Safe to re-run: cached pieces are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v mke2fs >/dev/null || [ -x /sbin/mke2fs ] || need+=(e2fsprogs)
command -v fio >/dev/null || need+=(fio)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-guest: missing ${need[*]}; run: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "setup-guest: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${need[@]}"
fi
exec node --import tsx src/guest/prepare.ts --fio
