#!/usr/bin/env bash
# Collects the training dataset of the models: every load pattern at 1, 2, 3 and 4 replicas
# against demo services (4 slots of 50 ms each: 80 rps per replica), with the aggregator in
# development mode at 10-second windows. Four services run side by side, one per replica count,
# each under its own experiment; five rounds of 8 minutes and a trace round of 10 minutes, one
# per pattern (about an hour). Rates are fractions of each service's capacity C = 80 x replicas,
# so every run crosses the SLA. The `trace` round replays real traces (NASA, Alibaba) at one
# trace minute per window (compression 6) around their busiest hours: the held-out test set.
#
# Output: output/sockshop_metrics.csv and output/experiments.csv, copied to models/data/.
# PATTERNS="trace" REPLICA_COUNTS="4" APPEND=1 runs only some rounds or services, appending to
# the existing output.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

DURATION="${DURATION:-8m}"
TRACES="${TRACES:-../shared/traces}"
if [ "${APPEND:-0}" != 1 ]; then
  [ ! -s output/sockshop_metrics.csv ] || die "output/sockshop_metrics.csv exists; move it aside first (or APPEND=1)"
  rm -f output/experiments.csv
fi

export MODE=development POLL_INTERVAL_SEC=10
export DEMO_SERVICES="demo1:1 demo2:2 demo3:3 demo4:4" DEMO_CONCURRENCY=4 DEMO_SERVICE_TIME_MS=50
if [ "${APPEND:-0}" != 1 ] || ! scripts/local-stack.sh status 2>&1 | grep -q "up    metrics-aggregator"; then
  scripts/local-stack.sh down >/dev/null 2>&1 || true
  scripts/local-stack.sh up
fi
LOAD_TESTING="$CARGO_TARGET_DIR/release/load-testing"

# rate FRACTION REPLICAS: FRACTION of the capacity of REPLICAS replicas, in rps.
rate() { awk -v f="$1" -v r="$2" 'BEGIN { printf "%.1f", f * 80 * r }'; }

# experiment PATTERN REPLICAS ARGS...: one run against demo<REPLICAS> (later --duration wins).
experiment() {
  local pattern=$1 r=$2; shift 2
  "$LOAD_TESTING" experiment --pattern "$pattern" --duration "$DURATION" --name "$pattern-r$r" \
    --targets-file ".local-stack/prometheus/targets/services/demo$r.json" --path /catalogue \
    --replicas "$r" --scale-command "scripts/local-stack.sh scale demo$r {replicas}" --settle 5s \
    "$@" >"output/collect-$pattern-r$r.log" 2>&1
}

round() {
  local pattern=$1 r
  say "$(date -u +%H:%M:%S) round: $pattern"
  for r in ${REPLICA_COUNTS:-1 2 3 4}; do
    case "$pattern" in
      constant) experiment constant "$r" --rps "$(rate "$(echo "0.6 0.95 0.8 1.05" | cut -d' ' -f"$r")" "$r")" & ;;
      ramp) experiment ramp "$r" --from-rps "$(rate 0.15 "$r")" --to-rps "$(rate 1.1 "$r")" & ;;
      step) experiment step "$r" --step-every 80s \
              --levels "$(for f in 0.3 0.75 1.0 0.55 0.95 0.4; do printf '%s,' "$(rate "$f" "$r")"; done | sed 's/,$//')" & ;;
      spike) experiment spike "$r" --base-rps "$(rate 0.45 "$r")" --peak-rps "$(rate 1.25 "$r")" \
              --spike-at 3m --spike-width 60s & ;;
      daily) experiment daily "$r" --min-rps "$(rate 0.2 "$r")" --max-rps "$(rate 1.05 "$r")" --period 4m & ;;
      trace)
        # 60 trace minutes from a busy hour, the busiest minute of it at 1.3 C: NASA from just
        # before the shuttle-launch peak (minute 17869) and a busy weekday, Alibaba at two bursts.
        local start file
        case "$r" in
          1) file=nasa_http_jul1995_1min.csv start=17840 ;;
          2) file=alibaba2021_ms_6d9c26b9_1min.csv start=225 ;;
          3) file=nasa_http_jul1995_1min.csv start=8160 ;;
          4) file=alibaba2021_ms_6d9c26b9_1min.csv start=405 ;;
        esac
        experiment trace "$r" --trace "$TRACES/$file" --compression 6 --duration 10m \
          --trace-start "${start}m" --peak-rps "$(rate 1.3 "$r")" & ;;
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
