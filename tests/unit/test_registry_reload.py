"""The directory registry (versions, atomic CURRENT, forward-only promotion) and hot reload between batches."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from examples.fraud.world import FEATURE_GROUPS as DEFAULT_FEATURE_GROUPS
from examples.fraud.world import FEATURE_NAMES
from stream_scorer.codec import decode
from stream_scorer.errors import ModelArtifactError
from stream_scorer.model import artifact
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.registry import Registry, is_registry
from stream_scorer.model.reload import ModelReloader
from stream_scorer.model.score import ScoringWeights, golden_vectors, score
from stream_scorer.model.verify import load_verified
from stream_scorer.pipeline.emit import PredictionEncoder
from stream_scorer.pipeline.vectorize import plan_inputs
from stream_scorer.worker import ModelServing
from tests.support import (
    FRAUD_CONTRACT,
    FRAUD_SETTINGS_FILE,
    FRAUD_SPEC_FILE,
    fraud_history,
    fraud_scorer,
    records_batch,
    small_model,
    transaction,
    vectorize,
)
from tests.unit.test_worker import NOW, SCHEMAS, FakeLookup, FakeSink, FakeSource, make_worker, messages


def model_v(version: int, seed: int | None = None) -> LogisticModel:
    model = dataclasses.replace(
        small_model(FEATURE_NAMES, seed=version if seed is None else seed), version=str(version)
    )
    return dataclasses.replace(model, golden_vectors=golden_vectors(model, np.ones((2, len(FEATURE_NAMES)))))


def register(registry: Registry, seed: int) -> int:
    def write(directory: Path, version: int) -> None:
        artifact.save(model_v(version, seed), directory)

    return registry.register(write)


def test_versions_count_up_and_promotion_only_moves_forward(tmp_path: Path) -> None:
    registry = Registry.create(tmp_path / "reg")
    assert is_registry(tmp_path / "reg") and registry.current() is None
    assert [register(registry, s) for s in (1, 2, 3)] == [1, 2, 3]
    registry.promote(2)
    assert registry.current() == 2
    with pytest.raises(ModelArtifactError, match="only moves forward"):
        registry.promote(1)
    with pytest.raises(ModelArtifactError, match="not newer"):
        registry.promote(2)
    registry.promote(3)
    assert registry.rollback() == 2  # the one served before
    with pytest.raises(ModelArtifactError, match="not older"):
        registry.rollback(3)
    assert registry.rollback(1) == 1
    assert [h["action"] for h in registry.history()] == ["register"] * 3 + [
        "promote",
        "promote",
        "rollback",
        "rollback",
    ]
    assert [i.version for i in registry.describe() if i.current] == [1]
    with pytest.raises(ModelArtifactError, match="not registered"):
        registry.promote(9)


def test_a_corrupt_version_is_never_promoted_and_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    registry = Registry.create(tmp_path)
    register(registry, 1)
    (registry.path(1) / "arrays.npz").write_bytes(b"flipped")
    with pytest.raises(ModelArtifactError, match=r"arrays\.npz"):
        registry.promote(1)
    assert registry.current() is None

    def half_written(directory: Path, version: int) -> None:
        (directory / "manifest.json").write_text("{}")

    with pytest.raises(ModelArtifactError):
        registry.register(half_written)
    assert registry.versions() == [1]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]


def test_a_non_registry_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("")
    with pytest.raises(ModelArtifactError, match="not a model registry"):
        Registry.create(tmp_path)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reloader_for(registry: Registry, clock: Clock, refused: list[str]) -> ModelReloader[LogisticModel]:
    return ModelReloader(
        registry,
        lambda p: load_verified(p, None, False),
        lambda m: m,
        on_refused=refused.append,
        serving_version=registry.current(),
        interval_seconds=1.0,
        clock=clock,
    )


def test_reloader_swaps_on_a_new_current_and_refuses_a_corrupt_one(tmp_path: Path) -> None:
    registry = Registry.create(tmp_path)
    for seed in (1, 2, 3):
        register(registry, seed)
    registry.promote(1)
    clock, refused = Clock(), []
    reloader = reloader_for(registry, clock, refused)
    assert reloader.poll() is None  # nothing moved
    registry.promote(2)
    assert reloader.poll() is None  # not checked before the interval
    clock.now = 1.0
    loaded = reloader.poll()
    assert loaded is not None and loaded.version == "2" and reloader.serving_version == 2
    # Version 3 is corrupted after registration (one flipped byte): refused, counted once, 2 keeps serving.
    arrays = registry.path(3) / "arrays.npz"
    data = bytearray(arrays.read_bytes())
    data[len(data) // 2] ^= 1
    arrays.write_bytes(bytes(data))
    (registry.root / "CURRENT").write_text("3\n")  # as if promoted before the corruption
    for _ in range(3):
        clock.now += 1.0
        assert reloader.poll() is None
    assert refused == ["ModelArtifactError"] and reloader.serving_version == 2


def test_stacked_challengers_score_like_each_model_alone() -> None:
    champion = small_model(FEATURE_NAMES, seed=1)
    challengers = [
        dataclasses.replace(small_model(FEATURE_NAMES[:4], seed=2), name="c1"),
        dataclasses.replace(small_model(FEATURE_NAMES[2:], seed=3), name="c2", threshold=0.9),
    ]
    scorer = fraud_scorer(champion, DEFAULT_FEATURE_GROUPS, FakeLookup(), challengers=challengers)
    batch = records_batch([transaction(i, card_id=f"card-{i % 6 + 1}") for i in range(50)], 0)
    scored = scorer.score(batch, 1_700_000_100_000)

    for j, model in enumerate([champion, *challengers]):
        plan = plan_inputs(model.serving_spec.input_columns.items(), DEFAULT_FEATURE_GROUPS, FRAUD_CONTRACT.fields)
        groups = {g.name: scored.group_values[g.name] for g in plan.feature_groups}
        fresh = {g.name: scored.freshness[g.name] for g in plan.feature_groups}
        matrix, _ = vectorize(plan, model.serving_spec, batch, groups, fresh)
        alone = score(matrix, ScoringWeights.of(model))
        got = scored.scores if j == 0 else scored.shadow_scores[:, j - 1]
        np.testing.assert_allclose(got, alone, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(scored.shadow_decisions[:, 1], scored.shadow_scores[:, 1] >= 0.9)
    np.testing.assert_array_equal(scored.decisions, scored.scores >= champion.threshold)


class OneSwap:
    """A model source that offers ``serving`` once, on its ``at``-th poll."""

    def __init__(self, serving: ModelServing, at: int) -> None:
        self.serving, self.at, self.polls = serving, at, 0

    def poll(self) -> ModelServing | None:
        self.polls += 1
        return self.serving if self.polls == self.at else None


def test_worker_swaps_models_between_batches_only() -> None:
    batches = [messages([transaction(i) for i in range(b * 10, b * 10 + 10)], b * 10) for b in range(4)]
    sink = FakeSink()
    new = dataclasses.replace(small_model(FEATURE_NAMES, seed=7), version="2")
    swap = OneSwap(
        ModelServing(
            fraud_scorer(new, DEFAULT_FEATURE_GROUPS, FakeLookup()), PredictionEncoder(SCHEMAS.prediction, new)
        ),
        at=3,
    )
    worker, registry = make_worker(FakeSource(batches), sink, models=swap)
    while worker.step():
        pass
    versions = [decode(SCHEMAS.prediction, v)["model_version"] for _, v in sink.produced]
    assert versions == ["1"] * 20 + ["2"] * 20  # batches 0-1 by v1, 2-3 by v2: never mixed in a batch
    assert sorted(decode(SCHEMAS.prediction, v)["event_id"] for _, v in sink.produced) == [
        f"evt-{i:06d}" for i in range(40)
    ]
    assert registry.get_sample_value("stream_scorer_model_reloads_total") == 1
    assert registry.get_sample_value("stream_scorer_model_info", {"name": "test", "version": "2", "checksum": "0" * 64})


def test_train_into_a_registry_and_move_current_from_the_command_line(tmp_path: Path, capsys) -> None:
    from examples.fraud.world import make_world
    from stream_scorer.cli import main

    world = make_world(seed=3, n_cards=100, n_merchants=20, n_devices=120)
    fraud_history(world, tmp_path / "history.csv", 800, seed=1)
    root = tmp_path / "registry"
    train = ["train", "--data", str(tmp_path / "history.csv"), "--registry", str(root), "--config"]
    train += [str(FRAUD_SETTINGS_FILE), "--spec", str(FRAUD_SPEC_FILE)]
    assert main([*train, "--promote"]) == 0
    assert main([*train, "--C", "0.1"]) == 0
    registry = Registry(root)
    assert registry.versions() == [1, 2] and registry.current() == 1
    assert artifact.load(registry.path(2)).version == "2"  # the manifest carries the registry's number
    assert main(["model", "promote", "2", "--registry", str(root)]) == 0
    assert main(["model", "promote", "1", "--registry", str(root)]) == 1  # backwards needs rollback
    assert "only moves forward" in capsys.readouterr().err
    assert main(["model", "rollback", "--registry", str(root)]) == 0 and registry.current() == 1
    capsys.readouterr()
    assert main(["model", "list", "--registry", str(root)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].startswith("*") and not listing[2].startswith("*")
    assert main(["model", "show", "2", "--registry", str(root)]) == 0
    assert '"version": "2"' in capsys.readouterr().out


def test_a_refused_version_is_tried_again_once_its_files_change(tmp_path: Path) -> None:
    from stream_scorer.model import signing

    private, public = signing.generate_keypair()
    registry = Registry.create(tmp_path)
    for seed in (1, 2):
        register(registry, seed)
    registry.promote(1)
    clock, refused = Clock(), []
    reloader = ModelReloader(
        registry,
        lambda p: load_verified(p, public, require_signature=True),
        lambda m: m,
        on_refused=refused.append,
        serving_version=1,
        interval_seconds=1.0,
        clock=clock,
    )
    (registry.root / "CURRENT").write_text("2\n")  # promoted by a tool that did not check signatures
    clock.now = 1.0
    assert reloader.poll() is None and refused == ["ModelArtifactError"]
    clock.now = 2.0
    assert reloader.poll() is None and refused == ["ModelArtifactError"]  # unchanged: not retried
    signing.sign(registry.path(2), private)
    clock.now = 3.0
    loaded = reloader.poll()
    assert loaded is not None and loaded.version == "2" and reloader.serving_version == 2


def test_a_transient_read_error_is_not_a_refusal(tmp_path: Path) -> None:
    registry = Registry.create(tmp_path)
    register(registry, 1)
    register(registry, 2)
    registry.promote(1)
    clock, refused, failures = Clock(), [], [OSError("stale NFS handle")]

    def load(path: Path) -> LogisticModel:
        if failures:
            raise failures.pop()
        return load_verified(path, None, False)

    reloader = ModelReloader(
        registry, load, lambda m: m, on_refused=refused.append, serving_version=1, interval_seconds=1.0, clock=clock
    )
    registry.promote(2)
    clock.now = 1.0
    assert reloader.poll() is None and refused == []
    clock.now = 2.0
    assert reloader.poll() is not None and reloader.serving_version == 2


def test_promote_runs_the_workers_checks_and_never_interleaves(tmp_path: Path) -> None:
    import threading
    import time

    def refuse_version_2(path: Path) -> None:
        if path.name == "2":
            raise ModelArtifactError("unsigned")
        time.sleep(0.2)  # a slow check: a concurrent promote must wait for it

    registry = Registry.create(tmp_path, verify=refuse_version_2)
    for seed in (1, 2, 3, 4):
        register(registry, seed)
    with pytest.raises(ModelArtifactError, match="unsigned"):
        registry.promote(2)
    assert registry.current() is None
    errors: list[Exception] = []

    def promote(version: int) -> None:
        try:
            Registry(tmp_path, verify=refuse_version_2).promote(version)
        except ModelArtifactError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in (3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Whichever ran first, CURRENT ends at 4 and never moved backwards; history has no backward "promote".
    assert registry.current() == 4
    moves = [(h.get("from"), h["version"]) for h in registry.history() if h["action"] == "promote"]
    assert all(old is None or new > old for old, new in moves)
    assert len(moves) + len(errors) == 2


def test_no_swap_while_a_commit_window_is_open() -> None:
    batches = [messages([transaction(i) for i in range(b * 10, b * 10 + 10)], b * 10) for b in range(3)]
    sink = FakeSink()
    new = dataclasses.replace(small_model(FEATURE_NAMES, seed=7), version="2")
    serving = ModelServing(
        fraud_scorer(new, DEFAULT_FEATURE_GROUPS, FakeLookup()), PredictionEncoder(SCHEMAS.prediction, new)
    )
    swap = OneSwap(serving, at=1)
    worker, _ = make_worker(FakeSource(batches), sink, models=swap, commit_interval=3600.0)
    worker.step()  # first poll of the source: the swap is offered and taken (nothing uncommitted yet)
    worker.step()
    worker.step()
    assert swap.polls == 1  # with the window open, the reloader is not even asked
    worker.commit_window()
    versions = {decode(SCHEMAS.prediction, v)["model_version"] for _, v in sink.produced}
    assert versions == {"2"} and sink.committed == [list(range(30))]


def test_groups_only_a_challenger_reads_do_not_flag_the_champion() -> None:
    champion = small_model(("event.amount_log", "event.is_ecom"), seed=1)
    challenger = dataclasses.replace(small_model(FEATURE_NAMES, seed=2), name="c")
    batch = records_batch([transaction(i) for i in range(7)], 0)  # card-0 has missing groups in FakeLookup
    scored = fraud_scorer(champion, DEFAULT_FEATURE_GROUPS, FakeLookup(), challengers=[challenger]).score(batch, NOW)
    assert not scored.imputed.any() and scored.freshness == {}
    alone = fraud_scorer(challenger, DEFAULT_FEATURE_GROUPS, FakeLookup()).score(batch, NOW)
    assert alone.imputed[0] and not alone.imputed[1:].any()
    np.testing.assert_allclose(scored.shadow_scores[:, 0], alone.scores, rtol=0, atol=1e-12)


def test_a_garbled_current_pointer_is_a_clear_error_and_the_reloader_keeps_serving(tmp_path: Path) -> None:
    registry = Registry.create(tmp_path)
    register(registry, 1)
    registry.promote(1)
    clock, refused = Clock(), []
    reloader = reloader_for(registry, clock, refused)
    (registry.root / "CURRENT").write_text("two\n")
    with pytest.raises(ModelArtifactError, match="does not hold a version number"):
        registry.current()
    clock.now = 1.0
    assert reloader.poll() is None and reloader.serving_version == 1 and refused == []
