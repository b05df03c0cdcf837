# Shared settings of the scripts; sourced, not run.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT
# Build outside the clone by default, so that fresh clones (CI) reuse earlier builds.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ml-autoscaler/target}"
export PATH="$HOME/.cargo/bin:$PATH"
# The broker version the tests and the local stack run (see BUILD-NOTES: tansu 0.6.0).
export TANSU_VERSION="0.6.0"

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
