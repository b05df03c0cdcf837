#!/usr/bin/env bash
# Starts the system for data collection (development mode): the aggregator appends to
# output/sockshop_metrics.csv; the models and the scaler are off. Falls back to local images
# where no registry is reachable, as start-production.sh does.
set -euo pipefail
MODE=development exec "$(dirname "$0")/start-production.sh" "$@"
