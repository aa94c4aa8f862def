"""What every chaos scenario shares: the stack, a trained model, the synthetic world; a row of the table."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from examples.fraud.world import World, make_world, sample_events
from stream_scorer import wiring
from stream_scorer.codec import Schemas, confluent_frame, encode
from stream_scorer.config import RedisSettings
from stream_scorer.features.store import RedisFeatureStore
from stream_scorer.model import artifact
from tools.chaos.harness import (
    Generator,
    Run,
    Supervisor,
    Verdict,
    drained,
    verify,
    wait_until,
)
from tools.synth import io as synth_io
from tools.synth.examples import EXAMPLES, example_history, example_settings, train_example

FRAUD_SETTINGS = EXAMPLES / "fraud" / "settings.toml"

SECRET = "SECRET-"  # sensitive values in malformed events carry this marker; it must never reach logs or headers


@dataclass
class Row:
    """One line of the chaos table."""

    scenario: str
    mode: str
    verdict: Verdict
    crashes: int
    recovery_seconds: list[float] = field(default_factory=list)
    notes: str = ""


@dataclass
class Context:
    """What every scenario shares: the stack, a trained model, the synthetic world and its features."""

    bootstrap: str
    redis_url: str
    workdir: Path
    world: World
    model_path: Path
    schemas: Schemas
    prefix: str = "chaos"
    redis_cluster: bool = False  # redis_url is a seed node of a Redis Cluster

    @staticmethod
    def prepare(bootstrap: str, redis_url: str, workdir: Path, redis_cluster: bool = False) -> Context:
        workdir.mkdir(parents=True, exist_ok=True)
        world = make_world(seed=31, n_cards=5_000, n_merchants=500, n_devices=6_000)
        example_history("fraud", world, workdir / "history.csv", 20_000)
        model = train_example("fraud", workdir / "history.csv", version="chaos")
        artifact.save(model, workdir / "model")
        settings = example_settings("fraud")
        context = Context(
            bootstrap,
            redis_url,
            workdir,
            world,
            workdir / "model",
            wiring.schemas(settings),
            redis_cluster=redis_cluster,
        )
        context.seed(redis_url)
        return context

    def redis_settings(self, redis_url: str | None = None) -> RedisSettings:
        return RedisSettings(url=redis_url or self.redis_url, key_prefix=self.prefix, cluster=self.redis_cluster)

    def seed(self, redis_url: str) -> None:
        redis_settings = self.redis_settings(redis_url)
        client = wiring.redis_client(redis_settings)
        synth_io.seed_features(
            self.world,
            RedisFeatureStore(client, self.prefix, redis_settings.key_tags),
            DEFAULT_FEATURE_GROUPS,
            now_ms=int(time.time() * 1000) + 600_000,
        )
        client.close()

    def env(self, **overrides: str) -> dict[str, str]:
        return {
            "STREAM_SCORER_CONFIG": str(FRAUD_SETTINGS),
            "STREAM_SCORER_MODEL_PATH": str(self.model_path),
            "STREAM_SCORER_REDIS__URL": self.redis_url,
            "STREAM_SCORER_REDIS__KEY_PREFIX": self.prefix,
            "STREAM_SCORER_REDIS__CLUSTER": str(self.redis_cluster).lower(),
            **overrides,
        }

    def events(self, n: int, seed: int, schema_id: int | None = None) -> list[tuple[bytes, bytes, str]]:
        records, _ = sample_events(
            self.world,
            n,
            start_ms=int(time.time() * 1000),
            rng=np.random.default_rng(seed),
            spacing_ms=0.01,
            id_prefix=f"chaos{seed}",
        )
        items = []
        for r in records:
            body = encode(self.schemas.events, r)
            items.append(
                (r["card_id"].encode(), body if schema_id is None else confluent_frame(schema_id, body), r["event_id"])
            )
        return items


def finish(ctx: Context, run: Run, sup: Supervisor, gen: Generator, drain_seconds: float) -> Verdict:
    gen.join()
    wait_until(lambda: drained(run, sup.group), drain_seconds, every=1.0)
    sup.stop()
    return verify(run, ctx.schemas.prediction, gen.acked, gen.sequence)


def recoveries(marks: list[float], verdict: Verdict, ok: Any = None) -> list[float]:
    times = np.sort(np.array([p["scored_at"] / 1000.0 for p in verdict.predictions if ok is None or ok(p)]))
    out = []
    for mark in marks:
        later = times[times > mark]
        if len(later):
            out.append(float(later[0] - mark))
    return out


def table(rows: list[Row]) -> str:
    """The chaos table, one row per scenario."""
    head = (
        f"{'scenario':34s} {'mode':14s} {'expected':>8s} {'unique':>8s} {'missing':>7s} {'dups':>6s} "
        f"{'order':>5s} {'crashes':>7s} {'recovery s (median/max)':>24s}  notes"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        v = row.verdict
        rec = (
            f"{np.median(row.recovery_seconds):.1f} / {max(row.recovery_seconds):.1f}" if row.recovery_seconds else "-"
        )
        lines.append(
            f"{row.scenario:34s} {row.mode:14s} {v.expected:>8d} {v.unique:>8d} {v.missing:>7d} "
            f"{v.duplicates:>6d} {v.order_violations:>5d} {row.crashes:>7d} {rec:>24s}  {row.notes}"
        )
        if v.dead_letters:
            lines.append(f"{'':34s} dead letters by class: {dict(sorted(v.dead_letters.items()))}")
    return "\n".join(lines)
