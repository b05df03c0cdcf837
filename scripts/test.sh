#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, then checks formatting and lints
# and runs every test. Integration tests start their own tansu broker and Prometheus on free
# ports, and their own demo replicas; the scaler's tests and the end-to-end run use the real
# Docker engine with images built here (scripts/build-local-images.sh, no registry needed).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/install-deps.sh"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Bounded, so that a hung test fails the run with a line saying so instead of running into CI's
# limit (seen once: a test that failed while its services ran hung at teardown).
bounded() {
  local limit=$1
  shift
  local rc=0
  timeout --kill-after=30s "$limit" "$@" || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    die "'$*' did not finish within $limit: a test hangs (rerun it alone with -- --nocapture)"
  fi
  return "$rc"
}
bounded 45m cargo test --workspace --locked
# The whole system under docker compose, about seventeen minutes (crates/e2e/tests/end_to_end.rs).
bounded 30m cargo test -p e2e --test end_to_end --locked -- --ignored --nocapture
