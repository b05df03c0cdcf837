#!/usr/bin/env bash
# The whole system on one machine without Docker images: the tansu broker (Kafka API), Debian's
# Prometheus, demo services standing in for Sock Shop, and the fleet, as plain processes.
#
#   scripts/local-stack.sh up               start everything (installs what is missing)
#   scripts/local-stack.sh down             stop everything
#   scripts/local-stack.sh status           what runs, where
#   scripts/local-stack.sh scale SERVICE N  set a demo service's replica count
#   scripts/local-stack.sh restart NAME     restart one fleet process (e.g. metrics-aggregator)
#   scripts/local-stack.sh logs NAME        follow a process' log
#
# In production mode the three inference services (ml-xgboost, ml-random-forest,
# ml-logistic-regression) vote on the trained models in models/, and the authoritative-scaler
# decides (SCALER_BACKEND=log: decisions are logged; the demo replicas are processes here).
#
# Settings (environment): MODE (production|development), POLL_INTERVAL_SEC (30), DEMO_SERVICES
# ("orders:2 carts:1": name:replicas), DEMO_CONCURRENCY (4), DEMO_SERVICE_TIME_MS (50),
# KAFKA_PORT (9092), PROMETHEUS_PORT (9090), LOCAL_STACK_DIR (.local-stack).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

STATE="${LOCAL_STACK_DIR:-$REPO_ROOT/.local-stack}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
MODE="${MODE:-production}"
POLL_INTERVAL_SEC="${POLL_INTERVAL_SEC:-30}"
DEMO_SERVICES="${DEMO_SERVICES:-orders:2 carts:1}"
DEMO_CONCURRENCY="${DEMO_CONCURRENCY:-4}"
DEMO_SERVICE_TIME_MS="${DEMO_SERVICE_TIME_MS:-50}"
BIN="$CARGO_TARGET_DIR/release"
TARGETS="$STATE/prometheus/targets"
BOOTSTRAP="127.0.0.1:$KAFKA_PORT"

pidfile() { echo "$STATE/pids/$1.pid"; }
running() { local f; f=$(pidfile "$1"); [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start NAME COMMAND...: runs COMMAND in the background, logging to logs/NAME.log.
start() {
  local name=$1; shift
  if running "$name"; then say "$name already running"; return; fi
  nohup "$@" >>"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$(pidfile "$name")"
}

stop() {
  local name=$1 f pid
  f=$(pidfile "$name")
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 150); do port_busy "$port" && return 0; sleep 0.2; done
  die "$what did not come up on port $port; see $STATE/logs/"
}

# A Prometheus file_sd entry: write_targets FILE JOB ADDR...
write_targets() {
  local file=$1 job=$2; shift 2
  local list="" a
  for a in "$@"; do list="$list${list:+,}\"$a\""; done
  printf '[{"targets":[%s],"labels":{"job":"%s"}}]\n' "$list" "$job" >"$file.tmp"
  mv "$file.tmp" "$file"
}

# Replica processes of a demo service, oldest first, as NAME:PORT.
replicas_of() {
  local service=$1 f
  for f in $(ls -tr "$STATE/pids/demo-$service-"*.pid 2>/dev/null); do
    f=$(basename "$f" .pid)
    running "$f" && echo "$f"
  done
  return 0
}

refresh_service_targets() {
  local service=$1 r addrs=()
  for r in $(replicas_of "$service"); do addrs+=("127.0.0.1:${r##*-}"); done
  if ((${#addrs[@]})); then
    write_targets "$TARGETS/services/$service.json" "$service" "${addrs[@]}"
  else
    rm -f "$TARGETS/services/$service.json"
  fi
}

next_free_port() {
  local p=8081
  while port_busy "$p" || compgen -G "$STATE/pids/*-$p.pid" >/dev/null; do
    p=$((p + 1))
  done
  echo "$p"
}

scale() {
  local service=$1 want=$2 have r port
  [[ "$want" =~ ^[0-9]+$ ]] || die "replica count must be a number: $want"
  have=$(replicas_of "$service" | wc -l)
  while ((have < want)); do
    port=$(next_free_port)
    SERVICE_NAME="$service" LISTEN_ADDR="127.0.0.1:$port" CONCURRENCY="$DEMO_CONCURRENCY" \
      SERVICE_TIME_MS="$DEMO_SERVICE_TIME_MS" start "demo-$service-$port" "$BIN/demo-service"
    wait_port "$port" "demo-service $service"
    have=$((have + 1))
  done
  while ((have > want)); do
    r=$(replicas_of "$service" | tail -1)
    stop "$r"
    have=$((have - 1))
  done
  refresh_service_targets "$service"
  say "$service: $want replicas"
}

fleet_target() { write_targets "$TARGETS/fleet/$1.json" "$1" "$2"; }

# The three voters, each on its own ops port; skipped until the models are trained.
start_voters() {
  local kind port=9102
  for kind in xgboost random_forest logistic_regression; do
    if [ -f "$REPO_ROOT/models/$kind/metadata.json" ]; then
      MODEL="$kind" MODEL_PATH="$REPO_ROOT/models/$kind" KAFKA_BOOTSTRAP_SERVERS="$BOOTSTRAP" \
        LISTEN_ADDR="127.0.0.1:$port" PREDICTIONS_CSV="$REPO_ROOT/output/predictions_$kind.csv" \
        start "ml-${kind//_/-}" "$BIN/ml-inference"
      fleet_target "ml-${kind//_/-}" "127.0.0.1:$port"
    else
      say "no trained $kind model in models/$kind: ml-${kind//_/-} not started (scripts/train.sh)"
    fi
    port=$((port + 1))
  done
}

# The scaler; without containers to scale locally it logs its decisions (SCALER_BACKEND=log).
start_scaler() {
  KAFKA_BOOTSTRAP_SERVERS="$BOOTSTRAP" LISTEN_ADDR="127.0.0.1:9105" \
    SCALER_BACKEND="${SCALER_BACKEND:-log}" DECISIONS_CSV="$REPO_ROOT/output/decisions.csv" \
    EVALUATION_JSON="$REPO_ROOT/models/evaluation.json" \
    start authoritative-scaler "$BIN/authoritative-scaler"
  fleet_target authoritative-scaler 127.0.0.1:9105
}

start_aggregator() {
  MODE="$MODE" POLL_INTERVAL_SEC="$POLL_INTERVAL_SEC" PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT" \
    KAFKA_BOOTSTRAP_SERVERS="$BOOTSTRAP" LISTEN_ADDR="127.0.0.1:9101" \
    DEV_CSV_PATH="$REPO_ROOT/output/sockshop_metrics.csv" \
    start metrics-aggregator "$BIN/metrics-aggregator"
  fleet_target metrics-aggregator 127.0.0.1:9101
}

up() {
  "$REPO_ROOT/scripts/install-deps.sh"
  say "building release binaries into $BIN"
  (cd "$REPO_ROOT" && cargo build --release --locked -p demo-service -p metrics-aggregator -p ml-inference -p authoritative-scaler -p topic-tail -p load-testing)
  mkdir -p "$STATE"/{pids,logs,kafka,prometheus/data} "$TARGETS"/{services,fleet} "$REPO_ROOT/output"

  port_busy "$KAFKA_PORT" && ! running tansu && die "port $KAFKA_PORT is taken; set KAFKA_PORT"
  (cd "$STATE/kafka" && start tansu "$HOME/.cargo/bin/tansu" broker \
    --listener-url "tcp://$BOOTSTRAP" --advertised-listener-url "tcp://$BOOTSTRAP" \
    --storage-engine sqlite://tansu.db)
  wait_port "$KAFKA_PORT" "tansu"

  cp "$REPO_ROOT/prometheus/local.yml" "$STATE/prometheus/prometheus.yml"
  port_busy "$PROMETHEUS_PORT" && ! running prometheus && die "port $PROMETHEUS_PORT is taken; set PROMETHEUS_PORT"
  start prometheus /usr/bin/prometheus --config.file="$STATE/prometheus/prometheus.yml" \
    --storage.tsdb.path="$STATE/prometheus/data" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --log.level=warn
  wait_port "$PROMETHEUS_PORT" "prometheus"

  local entry
  for entry in $DEMO_SERVICES; do scale "${entry%%:*}" "${entry##*:}"; done
  start_aggregator
  if [ "$MODE" = production ]; then
    start_voters
    start_scaler
  fi
  status
}

down() {
  local f
  for f in "$STATE"/pids/*.pid; do
    [ -e "$f" ] || continue
    stop "$(basename "$f" .pid)"
  done
  rm -f "$TARGETS"/services/*.json "$TARGETS"/fleet/*.json
  say "local stack stopped"
}

status() {
  local f name
  say "local stack in $STATE (MODE=$MODE)"
  for f in "$STATE"/pids/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    if running "$name"; then say "  up    $name (pid $(cat "$f"))"; else say "  DOWN  $name"; fi
  done
  say "Kafka (tansu): $BOOTSTRAP   Prometheus: http://127.0.0.1:$PROMETHEUS_PORT"
  say "read a topic:  $BIN/topic-tail --kafka-bootstrap-servers $BOOTSTRAP --topic metrics"
}

restart() {
  local name=$1
  stop "$name"
  case "$name" in
    metrics-aggregator) start_aggregator ;;
    ml-xgboost | ml-random-forest | ml-logistic-regression) start_voters ;;
    authoritative-scaler) start_scaler ;;
    *) die "cannot restart $name; restart the stack" ;;
  esac
  say "$name restarted (MODE=$MODE)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  scale) [ $# -eq 3 ] || die "usage: $0 scale SERVICE N"; mkdir -p "$STATE"/{pids,logs} "$TARGETS/services"; scale "$2" "$3" ;;
  restart) [ $# -eq 2 ] || die "usage: $0 restart NAME"; restart "$2" ;;
  logs) [ $# -eq 2 ] || die "usage: $0 logs NAME"; tail -F "$STATE/logs/$2.log" ;;
  *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
