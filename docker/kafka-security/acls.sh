#!/usr/bin/env bash
# Users, topics and ACLs of the SASL profile (docs/KAFKA-SECURITY.md), run once against the
# broker started with docker/kafka-security/docker-compose.sasl.yml. Everything goes through the
# broker's container-local listener (127.0.0.1:9094 inside the kafka container), the only one
# with administrative rights. Passwords are read from secrets/kafka/*.properties.
#
#   docker/kafka-security/acls.sh        (from the repository root, .env read by compose)
set -euo pipefail
cd "$(dirname "$0")/../.."
files=(-f docker-compose.yml -f docker/kafka-security/docker-compose.sasl.yml)
kafka() { docker compose "${files[@]}" exec -T kafka /opt/kafka/bin/"$@" --bootstrap-server 127.0.0.1:9094; }
PARTITIONS="${KAFKA_TOPIC_PARTITIONS:-3}"

for topic in metrics model-votes scaling-decisions anomalies; do
  kafka kafka-topics.sh --create --if-not-exists --topic "$topic" --partitions "$PARTITIONS" --replication-factor 1
done

for user in metrics-aggregator ml-inference authoritative-scaler; do
  password=$(sed -n 's/^sasl.password=//p' "secrets/kafka/$user.properties")
  [ -n "$password" ] && [ "$password" != CHANGE-ME ] || { echo "set sasl.password in secrets/kafka/$user.properties" >&2; exit 1; }
  # The password goes in on stdin, not on the host's command line (kafka-configs.sh itself
  # takes it as an argument, inside the container).
  printf '%s\n' "$password" | docker compose "${files[@]}" exec -T kafka bash -c \
    'read -r pw; /opt/kafka/bin/kafka-configs.sh --bootstrap-server 127.0.0.1:9094 --alter \
       --entity-type users --entity-name "$0" --add-config "SCRAM-SHA-512=[iterations=8192,password=$pw]"' \
    "$user" >/dev/null
done

acl() { kafka kafka-acls.sh --add --allow-principal "User:$1" "${@:2}" >/dev/null; }
# Only the aggregator writes feature vectors.
acl metrics-aggregator --operation Write --operation Describe --topic metrics
acl metrics-aggregator --operation Write --operation Describe --topic anomalies
# The voters read them (each model its own group, ml-inference-<model>) and are the only
# writers of votes.
acl ml-inference --operation Read --operation Describe --topic metrics
acl ml-inference --operation Read --group ml-inference- --resource-pattern-type prefixed
acl ml-inference --operation Write --operation Describe --topic model-votes
# The scaler reads the votes and writes the decisions.
acl authoritative-scaler --operation Read --operation Describe --topic model-votes
acl authoritative-scaler --operation Read --group authoritative-scaler
acl authoritative-scaler --operation Read --operation Describe --topic anomalies
acl authoritative-scaler --operation Read --group authoritative-scaler-anomalies
acl authoritative-scaler --operation Write --operation Describe --topic scaling-decisions
kafka kafka-acls.sh --list
