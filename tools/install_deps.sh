#!/usr/bin/env bash
# Installs the Debian packages bertrazor builds and tests with. Idempotent; quiet when all present.
set -euo pipefail
pkgs=(cmake g++ pkg-config ccache libeigen3-dev libfmt-dev catch2 nlohmann-json3-dev libutf8proc-dev
      libopenmpi-dev openmpi-bin clang libomp-dev libboost-dev libxxhash-dev libdnnl-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q >/dev/null || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
fi
