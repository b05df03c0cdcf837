#!/usr/bin/env bash
# Regenerates docs/EVALUATION.md, its plots and docs/evaluation/results.json: every policy
# (static, the seed's threshold scaler, Kubernetes HPA, each model, the ensemble under each
# voting strategy, the oracle) on the real traces of ../shared/traces, through the trace
# replay (crates/replay). About a minute on 2 cores. Arguments go to `replay evaluate`
# (`scripts/evaluate.sh --help`), e.g. --trace nasa --startup-delay-sec 60.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/scripts/install-deps.sh" >/dev/null
cargo run --release --locked -q -p replay -- evaluate "$@"
