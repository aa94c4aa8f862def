"""Hot reload: serve a registry's CURRENT version and swap to a new one between batches.

The worker calls :meth:`ModelReloader.poll` before it polls Kafka for the next batch, so a batch is
always scored by one model from start to end, and no event is dropped or scored twice because of a
reload. A version that fails verification (checksum, signature, golden vectors, inputs that are not
configured) is not served: the previous model keeps serving, the reason is logged and counted, and
that version is tried again only when CURRENT moves or its files change (say, once it is signed).
A registry that cannot be read right now (an OSError) is retried at the next check, not refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from stream_scorer.errors import StreamScorerError
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.registry import Registry

log = logging.getLogger(__name__)

Serving = TypeVar("Serving")


class ModelReloader(Generic[Serving]):
    """Watches ``registry``'s CURRENT; ``build`` turns a verified model into what the worker serves with."""

    def __init__(
        self,
        registry: Registry,
        load: Callable[[Path], LogisticModel],
        build: Callable[[LogisticModel], Serving],
        *,
        on_refused: Callable[[str], None],
        serving_version: int | None,
        interval_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._load = load
        self._build = build
        self._on_refused = on_refused  # called with the error class name, for a metric label
        self._interval = interval_seconds
        self._clock = clock
        self._serving = serving_version
        self._refused: tuple[int, tuple[tuple[str, int, int], ...]] | None = None  # version and its files' stat
        self._checked_at = clock()

    @property
    def serving_version(self) -> int | None:
        """The registry version being served."""
        return self._serving

    def poll(self) -> Serving | None:
        """What to serve from now on, if CURRENT moved to a version that verifies; else None (keep serving)."""
        now = self._clock()
        if now - self._checked_at < self._interval:
            return None
        self._checked_at = now
        try:
            version = self._registry.current()
        except (StreamScorerError, OSError) as exc:
            log.warning("cannot read the registry's current version, keeping the model: %s", exc)
            return None
        if version is None or version == self._serving:
            return None
        try:
            path = self._registry.path(version)
            files = _stat(path)
        except (StreamScorerError, OSError) as exc:
            log.warning("cannot read registry version %s yet, keeping the model: %s", version, exc)
            return None
        if self._refused == (version, files):
            return None  # refused as it is; tried again once its files change
        try:
            model = self._load(path)
            serving = self._build(model)
        except OSError as exc:  # transient (a volume hiccup): not refused, tried again at the next check
            log.warning(
                "model reload: version %s could not be read, keeping version %s: %s", version, self._serving, exc
            )
            return None
        except Exception as exc:  # anything else: the version is not served, the worker goes on
            self._refused = (version, files)
            reason = f"version {version} refused, version {self._serving} keeps serving: {exc}"
            log.error("model reload: %s", reason)
            self._on_refused(type(exc).__name__)
            return None
        log.info("model reload: now serving %s version %s (registry version %d)", model.name, model.version, version)
        self._serving = version
        self._refused = None
        return serving


def _stat(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, size and modification time of every file of an artifact: changes when any file is rewritten."""
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in directory.iterdir() if p.is_file()))
