#!/usr/bin/env bash
# Stops and removes every container of the system, the scaler's extra replicas included.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
COMPOSE_PROFILES=production,demo,tools,consumers compose -f docker-compose.yml -f docker-compose.local.yml \
  down --remove-orphans "$@"
