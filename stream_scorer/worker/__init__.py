"""The loops: the scoring worker (poll, decode, pipeline, encode, produce, commit), the label flow, supervision."""

from stream_scorer.worker.loop import Worker
from stream_scorer.worker.parts import BatchBounds, MessageSource, ModelServing, Topics

__all__ = ["BatchBounds", "MessageSource", "ModelServing", "Topics", "Worker"]
