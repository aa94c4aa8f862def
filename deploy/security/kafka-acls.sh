#!/usr/bin/env bash
# The least-privilege Kafka ACLs of stream-scorer: docs/security.md shows this file, and
# tests/integration/test_security.py applies exactly these lines (with its own names) on a broker with
# allow.everyone.if.no.acl.found=false. Run it as an admin of your cluster:
#   BOOTSTRAP=kafka:9093 ADMIN_CONFIG=admin.properties deploy/security/kafka-acls.sh
set -euo pipefail
acls() { kafka-acls.sh --bootstrap-server "$BOOTSTRAP" --command-config "$ADMIN_CONFIG" "$@"; }
INPUT=${INPUT:-transactions} OUTPUT=${OUTPUT:-predictions} DLQ=${DLQ:-transactions.dlq} LABELS=${LABELS:-labels}
GROUP=${GROUP:-stream-scorer} LABELS_GROUP=${LABELS_GROUP:-stream-scorer-labels}
TXN=${TXN:-stream-scorer-$GROUP-}  # <kafka.transactional_id_prefix>-<group>-: this group's worker slots only

# The worker, as User:stream-scorer: events in, predictions and dead letters out, its consumer group.
acls --add --allow-principal User:stream-scorer --operation Read --topic "$INPUT"
acls --add --allow-principal User:stream-scorer --operation Write --topic "$OUTPUT"
acls --add --allow-principal User:stream-scorer --operation Write --operation DescribeConfigs --topic "$DLQ"
acls --add --allow-principal User:stream-scorer --operation Read --group "$GROUP"
# Exactly-once only: the transactional ids of its worker slots (stream-scorer-<group>-<slot>).
acls --add --allow-principal User:stream-scorer --operation Write --transactional-id "$TXN" --resource-pattern-type prefixed
# The label flow, as User:stream-scorer-labels: labels in, dead letters out, its consumer group.
acls --add --allow-principal User:stream-scorer-labels --operation Read --topic "$LABELS"
acls --add --allow-principal User:stream-scorer-labels --operation Write --operation DescribeConfigs --topic "$DLQ"
acls --add --allow-principal User:stream-scorer-labels --operation Read --group "$LABELS_GROUP"
