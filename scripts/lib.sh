# Shared settings of the scripts; sourced, not run.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT
# Build outside the clone by default, so that fresh clones (CI) reuse earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ml-autoscaler/target}"
export PATH="$HOME/.cargo/bin:$PATH"
# The broker version the tests and the local stack run (its group coordinator is why the voters
# and the scaler are sole readers: docs/ARCHITECTURE.md, "Sole readers").
export TANSU_VERSION="0.6.0"
# XGBoost's library, from the PyPI wheel xgboost-cpu (the xgb crate's C API is 3.x-compatible).
export XGBOOST_VERSION="3.2.0"
export XGBOOST_HOME="$HOME/.cache/ml-autoscaler/xgboost-$XGBOOST_VERSION"
export XGBOOST_LIB_DIR="$REPO_ROOT/.deps/xgboost/xgboost/lib"
export LD_LIBRARY_PATH="$XGBOOST_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# docker compose (v2 plugin) when present, else Debian's docker-compose (v1).
compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose "$@"
  else
    docker-compose "$@"
  fi
}
