#!/usr/bin/env bash
# The live trace replay (crates/e2e/tests/live_replay.rs): 90 minutes of the Alibaba trace in
# 15 through the real system on the Docker engine (images built locally), next to what the
# trace replay's simulator says of the same slice. Writes docs/evaluation/live-replay.md and
# live-replay.png. About twenty minutes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/scripts/install-deps.sh" >/dev/null
LIVE_REPLAY_OUT="$REPO_ROOT/docs/evaluation" \
  cargo test --release --locked -p e2e --test live_replay -- --ignored --nocapture
