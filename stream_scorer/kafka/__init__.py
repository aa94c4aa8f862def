"""Thin wrappers over confluent-kafka: consume a batch, produce and check delivery, commit, topics."""
