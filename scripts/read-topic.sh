#!/usr/bin/env bash
# Reads a topic with Kafka's console consumer inside the kafka container:
#   scripts/read-topic.sh metrics | model-votes | scaling-decisions [--from-beginning]
# With the locally built broker (docker-compose.local.yml, no console consumer in its image) it
# reads with the fleet's topic-tail, in the same network.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
topic="${1:-metrics}"
shift || true
files=(-f docker-compose.yml -f docker-compose.local.yml)
if compose "${files[@]}" exec -T kafka test -x /opt/kafka/bin/kafka-console-consumer.sh 2>/dev/null; then
  compose "${files[@]}" exec kafka /opt/kafka/bin/kafka-console-consumer.sh --bootstrap-server localhost:9092 \
    --topic "$topic" --property print.key=true --property key.separator=$'\t' "$@"
else
  COMPOSE_PROFILES=tools compose "${files[@]}" run --rm --entrypoint topic-tail load-testing \
    --kafka-bootstrap-servers kafka:9092 --topic "$topic" --print-key "$@"
fi
