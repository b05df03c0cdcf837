#!/usr/bin/env bash
# Reads a topic with Kafka's console consumer inside the kafka container:
#   scripts/read-topic.sh metrics | model-votes | scaling-decisions [--from-beginning]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
topic="${1:-metrics}"
shift || true
compose exec kafka /opt/kafka/bin/kafka-console-consumer.sh --bootstrap-server localhost:9092 \
  --topic "$topic" --property print.key=true --property key.separator=$'\t' "$@"
