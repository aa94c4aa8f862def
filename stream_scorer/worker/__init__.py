"""The loops: the scoring worker (poll, decode, pipeline, encode, produce, commit), the label flow, supervision."""

from stream_scorer.worker.loop import BatchBounds, MessageSource, ModelServing, Topics, Worker

__all__ = ["BatchBounds", "MessageSource", "ModelServing", "Topics", "Worker"]
