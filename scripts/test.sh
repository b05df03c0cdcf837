#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, then checks formatting and lints
# and runs every test. Integration tests start their own tansu broker and Prometheus on free
# ports, and their own demo replicas.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

"$REPO_ROOT/scripts/install-deps.sh"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
