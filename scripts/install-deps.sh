#!/usr/bin/env bash
# Installs what building, testing and the local stack need, and nothing that is already there:
# Debian packages (Prometheus, libclang for bindgen, cmake) and the tansu broker (pinned).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

missing=()
[ -x /usr/bin/prometheus ] || command -v prometheus >/dev/null || missing+=(prometheus)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v cmake >/dev/null || missing+=(cmake)
command -v cc >/dev/null || missing+=(build-essential)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! "$HOME/.cargo/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  say "installing the tansu broker $TANSU_VERSION (about 15-20 minutes on 2 cores, once per machine)"
  # Without these features tansu has no storage engine and fails at start.
  cargo install tansu --version "$TANSU_VERSION" --locked \
    --no-default-features --features dynostore,libsql
fi
say "dependencies present: prometheus $(/usr/bin/prometheus --version 2>&1 | head -1 | awk '{print $3}'), tansu $TANSU_VERSION"
