#!/usr/bin/env bash
# Trains the three models into models/, with the evaluation tables in models/README.md and
# models/evaluation.json, from the collected dataset (models/data/) and from the Twitter trace
# replayed through the simulated demo target (`replay export`, written to output/training/:
# deterministic, so not committed). About two minutes on 2 cores. The Twitter days are split
# into parts the trainer fits on (days 1-15), corrects the quantiles on (16-18) and holds out
# (19-22); NASA and Alibaba, the evaluation's test traces, are never used here.
# Arguments go to the trainer (`scripts/train.sh --help`), e.g. --data and --experiments to
# train on freshly collected data as well.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/scripts/install-deps.sh" >/dev/null
cargo build --release --locked -q -p replay -p trainer
bin="$CARGO_TARGET_DIR/release"
out="$REPO_ROOT/output/training"
trace="$REPO_ROOT/../shared/traces/twitter_stream_aug2021_1min.csv"
parts="twitter:0-15,twitter-calibration:15-18,twitter-held-out:18-"
mkdir -p "$out"
data="models/data/metrics.csv"
experiments="models/data/experiments.csv"
# Four regimes of noise and scale: 1 slot at a busiest minute of 20 and of 60 requests per second
# (a quiet service's minutes vary by a sixth from chance alone), the demo's 4 slots at 500, and
# at 5,000 on up to 100 replicas. No warm-up: the capacity estimate learns along the whole trace,
# as it would in a service that runs for weeks.
for regime in "1 20 10" "1 60 10" "4 500 10" "4 5000 100"; do
  read -r slots peak most <<<"$regime"
  name="twitter-c$slots-$peak"
  say "replaying the Twitter trace as $name"
  "$bin/replay" export --trace "$trace" --service "$name" --part "$parts" \
    --concurrency "$slots" --peak-rps "$peak" --max-replicas "$most" --warmup-minutes 0 \
    --out "$out/$name" >/dev/null
  data="$data,$out/$name.csv"
  experiments="$experiments,$out/$name.experiments.csv"
done
"$bin/trainer" --data "$data" --experiments "$experiments" "$@"
