#!/usr/bin/env bash
# Trains the three models from the committed dataset (models/data/) into models/, with the
# evaluation table in models/README.md and models/evaluation.json. Arguments go to the trainer
# (`scripts/train.sh --help`), e.g. --data output/sockshop_metrics.csv --experiments output/experiments.csv
# to retrain on freshly collected data.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/scripts/install-deps.sh" >/dev/null
cargo run --release --locked -q -p trainer -- "$@"
