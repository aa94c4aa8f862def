"""Builds the real clients from settings and assembles the worker and the label flow.

``clients`` makes each client and runs the startup checks; ``worker`` and ``labels`` assemble the two loops.
"""

from stream_scorer.wiring.clients import (
    ensure_configured_topics,
    event_contract,
    feature_store,
    model_loader,
    multinomial_loader,
    redis_client,
    redis_nodes,
    schemas,
    served_model_path,
)
from stream_scorer.wiring.labels import LabelRuntime, build_label_runtime
from stream_scorer.wiring.worker import Runtime, build_runtime, tune_garbage_collector

__all__ = [
    "LabelRuntime",
    "Runtime",
    "build_label_runtime",
    "build_runtime",
    "ensure_configured_topics",
    "event_contract",
    "feature_store",
    "model_loader",
    "multinomial_loader",
    "redis_client",
    "redis_nodes",
    "schemas",
    "served_model_path",
    "tune_garbage_collector",
]
