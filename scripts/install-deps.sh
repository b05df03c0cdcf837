#!/usr/bin/env bash
# Installs what building, testing and the local stack need, and nothing that is already there:
# Debian packages (Prometheus, libclang for bindgen, cmake, HAProxy, dnsmasq) and the tansu
# broker (pinned).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

missing=()
[ -x /usr/bin/prometheus ] || command -v prometheus >/dev/null || missing+=(prometheus)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
command -v cmake >/dev/null || missing+=(cmake)
command -v cc >/dev/null || missing+=(build-essential)
command -v curl >/dev/null || missing+=(curl)
# The scaler's Docker tests: a static busybox for a test image built without a registry, and
# Compose (Debian's docker-compose) for a compose project to scale.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v docker-compose >/dev/null || missing+=(docker-compose)
# The edge router's test (crates/e2e/tests/edge_router.rs): Debian's HAProxy runs the compose
# file's configuration, dnsmasq answers the replicas' name as Docker's DNS does.
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
# Local images without a registry (scripts/build-local-images.sh): a Debian root file system.
command -v debootstrap >/dev/null || missing+=(debootstrap)
# The font the trace replay's plots are labelled with (scripts/evaluate.sh).
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
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
# XGBoost's shared library for the `xgb` crate, from the PyPI wheel (the crate's own download
# goes to GitHub, which may be closed). Unpacked into a cache outside the clone, linked from
# .deps/ in the clone, where .cargo/config.toml points XGBOOST_LIB_DIR and LD_LIBRARY_PATH.
if [ ! -f "$XGBOOST_HOME/xgboost/lib/libxgboost.so" ]; then
  say "fetching libxgboost $XGBOOST_VERSION (PyPI wheel xgboost-cpu)"
  command -v python3 >/dev/null || die "python3 is needed to fetch the XGBoost wheel"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    "xgboost-cpu==$XGBOOST_VERSION" -d "$tmp"
  mkdir -p "$XGBOOST_HOME"
  python3 - "$tmp"/xgboost_cpu-*.whl "$XGBOOST_HOME" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(("xgboost/lib/", "xgboost_cpu.libs/")):
            z.extract(name, dest)
PY
  rm -rf "$tmp"
fi
mkdir -p "$REPO_ROOT/.deps"
ln -sfn "$XGBOOST_HOME" "$REPO_ROOT/.deps/xgboost"

say "dependencies present: prometheus $(/usr/bin/prometheus --version 2>&1 | head -1 | awk '{print $3}'), tansu $TANSU_VERSION, libxgboost $XGBOOST_VERSION"
