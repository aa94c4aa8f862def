"""Decoded batch -> enrich -> screen -> freshness -> vectorize -> score, and the predictions encoded. Knows no Kafka."""

from stream_scorer.pipeline.scorer import ScoredBatch, Scorer, status_counts

__all__ = ["ScoredBatch", "Scorer", "status_counts"]
