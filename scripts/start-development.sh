#!/usr/bin/env bash
# Starts the system for data collection (development mode): the aggregator appends to
# output/sockshop_metrics.csv; the models and the scaler are off.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
mkdir -p output
export MODE=development COMPOSE_PROFILES="${EXTRA_PROFILES:-}"
export FLEET_UID="${FLEET_UID:-$(id -u)}" FLEET_GID="${FLEET_GID:-$(id -g)}"
compose up -d --build "$@"
say "collecting into output/sockshop_metrics.csv; run experiments with:"
say "  docker compose run --rm loadgen experiment --pattern ramp --duration 30 --target http://edge-router/ --scenario sockshop"
