"""The settings: one frozen, typed object; the only reader of settings files, environment variables and secrets."""

from stream_scorer.config.events import EventSettings, SchemaRegistrySettings
from stream_scorer.config.load import ENV_PREFIX, load_settings
from stream_scorer.config.redis_settings import RedisSettings
from stream_scorer.config.secrets import resolve_secret
from stream_scorer.config.settings import (
    BatchSettings,
    DriftSettings,
    FeatureGroup,
    KafkaSettings,
    LabelSettings,
    MetricsSettings,
    Settings,
    ValidationSettings,
    window_seconds,
)

__all__ = [
    "ENV_PREFIX",
    "BatchSettings",
    "DriftSettings",
    "EventSettings",
    "FeatureGroup",
    "KafkaSettings",
    "LabelSettings",
    "MetricsSettings",
    "RedisSettings",
    "SchemaRegistrySettings",
    "Settings",
    "ValidationSettings",
    "load_settings",
    "resolve_secret",
    "window_seconds",
]
