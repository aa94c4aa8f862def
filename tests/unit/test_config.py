"""Settings: file, environment overrides, clear errors, secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from stream_scorer.config import FeatureGroup, load_settings
from stream_scorer.errors import ConfigError
from stream_scorer.events.contract import Entity, FieldRule

REPO = Path(__file__).resolve().parents[2]


def test_defaults_without_file_or_environment() -> None:
    settings = load_settings(None, {})
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.redis.url == "redis://127.0.0.1:16379/0"
    assert settings.feature_groups == () and settings.events.schema is None
    assert (settings.schemas_dir / "prediction.avsc").exists()


def test_the_settings_file_can_come_from_stream_scorer_config() -> None:
    fraud = REPO / "examples" / "fraud" / "settings.toml"
    settings = load_settings(None, {"STREAM_SCORER_CONFIG": str(fraud), "STREAM_SCORER_BATCH__MAX_EVENTS": "7"})
    assert settings.feature_groups == DEFAULT_FEATURE_GROUPS and settings.batch.max_events == 7
    assert settings.events.schema == fraud.parent / "transaction.avsc"  # relative to the file, not the cwd
    assert dict(settings.kafka.schema_ids) == {"1": str(fraud.parent / "transaction.avsc")}


def test_file_then_environment_overrides(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        """
model_path = "models/x"
[kafka]
input_topic = "tx"
input_format = "confluent"
schema_ids = { "5" = "transaction.avsc" }
[kafka.client]
"security.protocol" = "SASL_SSL"
"sasl.password" = "hunter2"
[batch]
max_events = 64
[events]
schema = "schemas/event.avsc"
[[events.entities]]
name = "card"
key = "payment.card"
[[events.rules]]
field = "payment.amount"
minimum = 0
[[feature_groups]]
name = "velocity"
entity = "card"
features = ["a", "b"]
max_age_seconds = 30
"""
    )
    env = {
        "STREAM_SCORER_BATCH__MAX_EVENTS": "128",
        "STREAM_SCORER_KAFKA__CREATE_TOPICS": "false",
        "STREAM_SCORER_METRICS__PORT": "9999",
        "OTHER": "ignored",
    }
    settings = load_settings(path, env)
    assert settings.kafka.input_topic == "tx" and settings.kafka.input_format == "confluent"
    assert dict(settings.kafka.schema_ids) == {"5": str(tmp_path / "transaction.avsc")}
    assert settings.events.schema == tmp_path / "schemas" / "event.avsc"
    assert settings.events.entities == (Entity(name="card", key="payment.card"),)
    assert settings.events.rules == (FieldRule(field="payment.amount", minimum=0.0),)
    assert settings.batch.max_events == 128 and settings.metrics.port == 9999
    assert settings.kafka.create_topics is False
    assert settings.model_path == Path("models/x")
    assert settings.feature_groups == (
        FeatureGroup(name="velocity", entity="card", features=("a", "b"), max_age_seconds=30),
    )
    assert "hunter2" not in repr(settings) and "SASL_SSL" in repr(settings)


def test_redis_password_is_masked() -> None:
    settings = load_settings(None, {"STREAM_SCORER_REDIS__URL": "redis://user:s3cret@host:6379/0"})
    assert "s3cret" not in repr(settings) and "host:6379" in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STREAM_SCORER_KAFKA__BOOTSTRAP": "x"}, "unknown setting"),
        ({"STREAM_SCORER_KAFKA__INPUT_FORMAT": "json"}, "must be one of"),
        ({"STREAM_SCORER_BATCH__MAX_EVENTS": "many"}, "must be a number"),
        ({"STREAM_SCORER_BATCH__MAX_EVENTS": "0"}, ">= 1"),
        ({"STREAM_SCORER_KAFKA__CREATE_TOPICS": "maybe"}, "true or false"),
        ({"STREAM_SCORER_KAFKA__CLIENT": "x"}, "table"),
        ({"STREAM_SCORER_EVENTS__DECODER": "rust"}, "must be one of"),
        ({"STREAM_SCORER_BATCH__MAX_UNCOMMITTED_BATCHES": "0"}, ">= 1"),
        (  # librdkafka would refuse the transactional producer at startup, in a restart loop
            {"STREAM_SCORER_KAFKA__DELIVERY": "exactly_once", "STREAM_SCORER_BATCH__FLUSH_TIMEOUT_SECONDS": "30"},
            r"message.timeout.ms \(120000\) must not exceed the transaction timeout \(60020 ms",
        ),
    ],
)
def test_bad_settings_say_what_to_fix(env, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, env)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", {})
    (tmp_path / "bad.toml").write_text("[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path / "bad.toml", {})
    (tmp_path / "groups.toml").write_text(
        '[[feature_groups]]\nname = "g"\nentity = "planet"\nfeatures = ["a"]\nmax_age_seconds = 1\n'
    )
    with pytest.raises(ConfigError, match=r"entity 'planet', which \[\[events.entities\]\] does not declare"):
        load_settings(tmp_path / "groups.toml", {})


def test_feature_group_rules() -> None:
    with pytest.raises(ConfigError, match="identifier"):
        FeatureGroup(name="event", entity="card", features=("a",), max_age_seconds=1)
    with pytest.raises(ConfigError, match="without repeats"):
        FeatureGroup(name="g", entity="card", features=("a", "a"), max_age_seconds=1)
    with pytest.raises(ConfigError, match="max_age_seconds"):
        FeatureGroup(name="g", entity="card", features=("a",), max_age_seconds=0)


def test_secrets_come_from_env_or_files_and_never_show(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stream_scorer.config import resolve_secret

    (tmp_path / "kafka_password").write_text("from-a-file\n")
    (tmp_path / "s.toml").write_text(
        f'[kafka.client_secrets]\n"sasl.password" = "file:{tmp_path / "kafka_password"}"\n'
        '"ssl.key.password" = "env:KEY_PASSWORD"\n[redis]\npassword = "env:REDIS_PASSWORD"\n'
    )
    monkeypatch.setenv("KEY_PASSWORD", "from-env")
    settings = load_settings(tmp_path / "s.toml", {})
    assert settings.kafka.librdkafka() == {"sasl.password": "from-a-file", "ssl.key.password": "from-env"}
    assert "from-a-file" not in repr(settings) and "from-env" not in repr(settings)
    with pytest.raises(ConfigError, match="REDIS_PASSWORD is not set") as raised:
        resolve_secret(settings.redis.password, "redis.password")
    assert "from" not in str(raised.value)
    with pytest.raises(ConfigError, match="cannot read secret file"):
        resolve_secret(f"file:{tmp_path / 'nope'}", "x")
    with pytest.raises(ConfigError, match='"env:NAME" or "file:/path"'):
        resolve_secret("hunter2", "x")


def test_exactly_once_with_a_short_flush_timeout_and_a_shorter_message_timeout_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[kafka]\ndelivery = "exactly_once"\n[kafka.client]\n"message.timeout.ms" = "60000"\n')
    settings = load_settings(path, {"STREAM_SCORER_BATCH__FLUSH_TIMEOUT_SECONDS": "30"})
    assert settings.transaction_timeout_ms == 60_020
