#!/usr/bin/env bash
# Collects the training dataset of the models: every load pattern at 1, 2, 3 and 4 replicas
# against demo services (4 slots of 50 ms each: 80 rps per replica), with the aggregator in
# development mode at 10-second windows. Four services run side by side, one per replica count,
# each under its own experiment; six rounds of 8 minutes, one per pattern (about 55 minutes).
# Rates are fractions of each service's capacity C = 80 x replicas, so every run crosses the SLA.
# The `trace` round replays real traces (NASA, Alibaba) and is the held-out test set.
#
# Output: output/sockshop_metrics.csv and output/experiments.csv, copied to models/data/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

DURATION="${DURATION:-8m}"
TRACES="${TRACES:-../shared/traces}"
[ ! -s output/sockshop_metrics.csv ] || die "output/sockshop_metrics.csv exists; move it aside first"
rm -f output/experiments.csv

export MODE=development POLL_INTERVAL_SEC=10
export DEMO_SERVICES="demo1:1 demo2:2 demo3:3 demo4:4" DEMO_CONCURRENCY=4 DEMO_SERVICE_TIME_MS=50
scripts/local-stack.sh down >/dev/null 2>&1 || true
scripts/local-stack.sh up
LOADGEN="$CARGO_TARGET_DIR/release/loadgen"

# rate FRACTION REPLICAS: FRACTION of the capacity of REPLICAS replicas, in rps.
rate() { awk -v f="$1" -v r="$2" 'BEGIN { printf "%.1f", f * 80 * r }'; }

# experiment PATTERN REPLICAS ARGS...: one run against demo<REPLICAS>.
experiment() {
  local pattern=$1 r=$2; shift 2
  "$LOADGEN" experiment --pattern "$pattern" --duration "$DURATION" --name "$pattern-r$r" \
    --targets-file ".local-stack/prometheus/targets/services/demo$r.json" --path /catalogue \
    --replicas "$r" --scale-command "scripts/local-stack.sh scale demo$r {replicas}" --settle 5s \
    "$@" >"output/collect-$pattern-r$r.log" 2>&1
}

round() {
  local pattern=$1 r
  say "$(date -u +%H:%M:%S) round: $pattern"
  for r in 1 2 3 4; do
    case "$pattern" in
      constant) experiment constant "$r" --rps "$(rate "$(echo "0.6 0.95 0.8 1.05" | cut -d' ' -f"$r")" "$r")" & ;;
      ramp) experiment ramp "$r" --from-rps "$(rate 0.15 "$r")" --to-rps "$(rate 1.1 "$r")" & ;;
      step) experiment step "$r" --step-every 80s \
              --levels "$(for f in 0.3 0.75 1.0 0.55 0.95 0.4; do printf '%s,' "$(rate "$f" "$r")"; done | sed 's/,$//')" & ;;
      spike) experiment spike "$r" --base-rps "$(rate 0.45 "$r")" --peak-rps "$(rate 1.25 "$r")" \
              --spike-at 3m --spike-width 60s & ;;
      daily) experiment daily "$r" --min-rps "$(rate 0.2 "$r")" --max-rps "$(rate 1.05 "$r")" --period 4m & ;;
      trace)
        if ((r % 2)); then
          experiment trace "$r" --trace "$TRACES/nasa_http_jul1995_1min.csv" --compression 60 \
            --trace-start "$((r * 2 + 3))days" --peak-rps "$(rate 1.1 "$r")" &
        else
          experiment trace "$r" --trace "$TRACES/alibaba2021_ms_6d9c26b9_1min.csv" --compression 60 \
            --trace-start "$((r))h" --peak-rps "$(rate 1.1 "$r")" &
        fi ;;
    esac
  done
  wait
}

for pattern in ${PATTERNS:-constant ramp step spike daily trace}; do round "$pattern"; done
sleep 15   # the last windows
mkdir -p models/data
cp output/sockshop_metrics.csv models/data/metrics.csv
cp output/experiments.csv models/data/experiments.csv
say "collected $(($(wc -l <models/data/metrics.csv) - 1)) rows in $(($(wc -l <models/data/experiments.csv) - 1)) runs into models/data/"
