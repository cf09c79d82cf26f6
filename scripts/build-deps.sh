#!/usr/bin/env bash
# Installs what building the payload needs on Debian when it is missing:
# gcc, libc6-dev and a static libseccomp for runc (cgo), zstd for compression.
# A no-op when everything is there; as a non-root user it says what to install.
set -euo pipefail
missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
[ -f /usr/lib/x86_64-linux-gnu/libseccomp.a ] || [ -f /usr/lib/libseccomp.a ] || missing+=(libseccomp-dev)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "building the payload needs: ${missing[*]} (Debian: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "==> installing ${missing[*]} (needed to build the payload)" >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; }
