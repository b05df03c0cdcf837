#!/usr/bin/env bash
# Starts the whole system with the models and the scaler active (docker compose, production mode).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
mkdir -p output
export MODE=production COMPOSE_PROFILES="production${EXTRA_PROFILES:+,$EXTRA_PROFILES}"
export FLEET_UID="${FLEET_UID:-$(id -u)}" FLEET_GID="${FLEET_GID:-$(id -g)}"
compose up -d --build "$@"
say "Sock Shop http://localhost:${SOCKSHOP_PORT:-80}  Prometheus http://localhost:${PROMETHEUS_PORT:-9090}  Grafana http://localhost:${GRAFANA_PORT:-3000}"
say "decisions: scripts/tail-decisions.sh    topics: scripts/read-topic.sh metrics"
