#!/usr/bin/env bash
# Onboard a partner on the Kafka door of a docker-compose.yml deployment (docs/security.md, class 3):
# its SCRAM-SHA-512 credential, its topic partner.events.<partner> and DLQ, and ACLs that let its principal
# write that topic, read that DLQ (consumer group partner-dlq.<partner>) and nothing else. Run from the repo root:
#   PARTNER_PASSWORD='…' deploy/kafka-partner.sh shop-eu
# The broker image's own tools do it over the internal listener (trusted); the local test broker does the same
# with deploy/local/KafkaPartnerAdmin.java.
set -euo pipefail
partner="${1:?usage: PARTNER_PASSWORD=… $0 <partner id>}"
: "${PARTNER_PASSWORD:?set PARTNER_PASSWORD to the new password of the partner}"
if [[ ! "$partner" =~ ^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$ || "$partner" == *.dlq ]]; then
  echo "partner id '$partner' cannot name a Kafka topic (letters, digits, '.', '_', '-'; not ending in .dlq)" >&2
  exit 2
fi
topic="partner.events.$partner"
# The password goes in on stdin, not on a command line another process could list.
docker compose exec -T -e PARTNER="$partner" -e TOPIC="$topic" kafka bash -euo pipefail -c '
  read -r PASSWORD
  bin=/opt/kafka/bin; server=localhost:9092
  $bin/kafka-configs.sh --bootstrap-server $server --alter --entity-type users --entity-name "$PARTNER" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$PASSWORD]"
  for t in "$TOPIC" "$TOPIC.dlq"; do
    $bin/kafka-topics.sh --bootstrap-server $server --create --if-not-exists --topic "$t" --partitions 3
  done
  $bin/kafka-acls.sh --bootstrap-server $server --add --allow-principal "User:$PARTNER" \
    --operation Write --operation Describe --topic "$TOPIC" --resource-pattern-type literal
  $bin/kafka-acls.sh --bootstrap-server $server --add --allow-principal "User:$PARTNER" \
    --operation Read --operation Describe --topic "$TOPIC.dlq" --resource-pattern-type literal
  $bin/kafka-acls.sh --bootstrap-server $server --add --allow-principal "User:$PARTNER" \
    --operation Read --group "partner-dlq.$PARTNER" --resource-pattern-type literal
' <<<"$PARTNER_PASSWORD"
echo "partner $partner: writes $topic, reads $topic.dlq (group partner-dlq.$partner) on localhost:9094 (SASL SCRAM-SHA-512)"
