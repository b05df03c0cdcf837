#!/usr/bin/env bash
# Regenerates docs/EVALUATION.md, its plots and docs/evaluation/results.json: every policy
# (static, the seed's threshold scaler, Kubernetes HPA and the Holt-Winters baseline across
# their targets, each model, the ensemble across its forecast quantiles and under each voting
# strategy, the oracle) on the real traces of ../shared/traces, in six scenarios (three service
# profiles at two scales), through the trace replay (crates/replay). 38 to 102 minutes on 2 cores
# (the 100-replica scenarios of the whole NASA month are most of it). Arguments go to
# `replay evaluate` (`scripts/evaluate.sh --help`), e.g. --trace alibaba --scenario demo.
# Build nothing else in the same target directory while it runs (a clean-clone CI run shares it):
# one run died with a segmentation fault after 148 minutes, minutes after such a release build
# rewrote what the running binary had loaded from there.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/scripts/install-deps.sh" >/dev/null
cargo run --release --locked -q -p replay -- evaluate "$@"
