#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs every test.
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real services and tools the tests drive (Debian packages).
APT_PACKAGES=(
  keystone uwsgi-core uwsgi-plugin-python3   # a real Keystone for keystone-mode tests
  python3-openstackclient python3-glanceclient  # the CLIs the end-to-end tests drive
  qemu-utils                                  # qemu-img: test images, conversion plugin
  curl xz-utils zstd                          # transfers, decompression plugin
  strace                                      # the durability test checks the fsync order
  prometheus                                  # a real Prometheus scrapes /metrics (test/ops/metrics.test.ts)
  tempest glance-tempest-plugin               # tempest's image API tests (test/tempest/tempest.test.ts)
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

npm ci --no-audit --no-fund
# Tempest runs as one of the tests (several minutes); IMAGO_TEMPEST=0 leaves it out.
export IMAGO_TEMPEST="${IMAGO_TEMPEST:-1}"
npm test
