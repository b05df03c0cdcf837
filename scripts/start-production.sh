#!/usr/bin/env bash
# Starts the whole system with the models and the scaler active: docker compose, production mode.
#
# Where no image can be pulled (no registry reachable), it says so and starts the same services
# from images built here (scripts/build-local-images.sh, docker-compose.local.yml): the broker,
# Prometheus, the socket proxy, the fleet, and the demo target in place of Sock Shop, whose
# images (like cAdvisor's and Grafana's) only a registry has.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
mkdir -p output
export MODE="${MODE:-production}"
export FLEET_UID="${FLEET_UID:-$(id -u)}" FLEET_GID="${FLEET_GID:-$(id -g)}"
export COMPOSE_PROFILES="production${EXTRA_PROFILES:+,$EXTRA_PROFILES}"
[ "$MODE" = production ] || export COMPOSE_PROFILES="${EXTRA_PROFILES:-}"
# The demo consumer (EXTRA_PROFILES=consumers) is scaled as a consumer group unless .env or the
# environment names the groups.
consumers=0
case ",${EXTRA_PROFILES:-}," in *,consumers,*) consumers=1 ;; esac
if [ "$consumers" = 1 ] && [ -z "${CONSUMER_GROUPS:-}" ] && ! grep -qE '^CONSUMER_GROUPS=.+' .env 2>/dev/null; then
  export CONSUMER_GROUPS=demo-consumer=demo-consumer@demo-work
fi

if [ "${LOCAL_IMAGES:-auto}" != 1 ] && compose pull --quiet --ignore-pull-failures 2>/dev/null \
    && docker image inspect weaveworksdemos/front-end:0.3.12 >/dev/null 2>&1; then
  compose up -d --build "$@"
  say "Sock Shop http://localhost:${SOCKSHOP_PORT:-80}  Prometheus http://localhost:${PROMETHEUS_PORT:-9090}  Grafana http://localhost:${GRAFANA_PORT:-3000}"
else
  say "cannot pull the images (no registry reachable?): starting from locally built images, with the demo target in place of Sock Shop"
  "$REPO_ROOT/scripts/build-local-images.sh"
  export COMPOSE_PROFILES="${COMPOSE_PROFILES:+$COMPOSE_PROFILES,}demo"
  services=(kafka prometheus demo metrics-aggregator)
  [ "$MODE" = production ] && services+=(docker-guard ml-xgboost ml-random-forest ml-logistic-regression authoritative-scaler)
  [ "$consumers" = 1 ] && services+=(demo-consumer)
  compose -f docker-compose.yml -f docker-compose.local.yml up -d "${services[@]}" "$@"
  say "demo target: docker compose run --rm load-testing run --target http://demo:8080/catalogue --pattern spike"
  say "Prometheus http://localhost:${PROMETHEUS_PORT:-9090}"
fi
say "decisions: scripts/tail-decisions.sh    topics: scripts/read-topic.sh metrics"
