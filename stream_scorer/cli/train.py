"""``stream-scorer train`` and ``stream-scorer score``: batch training and batch scoring of dataset files."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import fastavro

from stream_scorer import wiring
from stream_scorer.config import Settings
from stream_scorer.errors import ConfigError, ModelArtifactError, TrainingError
from stream_scorer.model import artifact
from stream_scorer.model import multinomial as served_multinomial
from stream_scorer.model.artifact import LogisticModel
from stream_scorer.model.fitted_spec import transform
from stream_scorer.model.registry import Registry
from stream_scorer.model.score import score_columns
from stream_scorer.pipeline.vectorize import check_categories, plan_inputs
from stream_scorer.training import multinomial, train
from stream_scorer.training.dataset import Table, input_columns, read_table, with_event_fields
from stream_scorer.training.featurespec import FeatureSpec
from stream_scorer.training.report import format_report
from stream_scorer.training.specfile import load_spec

SCORE_CHUNK = 50_000


def add_batch_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Register ``train`` and ``score``."""
    fit = commands.add_parser(
        "train",
        parents=[common],
        help="train a logistic regression and write a checksummed artifact",
        description="Read a dataset (CSV, Avro container, Parquet), build features from a spec, fit a penalized "
        "logistic regression (scikit-learn's convention), calibrate, choose the threshold, report on held-out "
        "rows and write the artifact (or register it as the next version of a registry).",
    )
    fit.add_argument("--data", type=Path, required=True, help="dataset file: .csv, .avro or .parquet")
    fit.add_argument("--format", default="auto", choices=["auto", "csv", "avro", "parquet"])
    fit.add_argument("--spec", type=Path, default=None, help="feature spec TOML (default: every numeric column)")
    fit.add_argument("--label", default=None, help="label column (default: the spec's, else 'label')")
    fit.add_argument(
        "--time-column", default=None, help="event-time column (default: the spec's, else event.<events.time_field>)"
    )
    fit.add_argument("--out", type=Path, default=None, help="artifact directory (default: settings model_path)")
    fit.add_argument("--name", default="model", help="model name")
    fit.add_argument("--version", default=None, help="model version (default: a UTC timestamp)")
    fit.add_argument("--C", type=float, default=1.0, help="inverse regularization strength, as in scikit-learn")
    fit.add_argument("--penalty", choices=["l2", "l1", "elasticnet", "none"], default="l2")
    fit.add_argument(
        "--multinomial",
        action="store_true",
        help="several classes (softmax, L2 only); scored in batch by `score`, not by the streaming worker",
    )
    fit.add_argument("--l1-ratio", type=float, default=None, help="elasticnet: the share of the L1 penalty")
    fit.add_argument("--class-weight", default=None, help='"balanced", or explicit weights like "0:1,1:20"')
    fit.add_argument("--holdout", type=float, default=0.2, help="share of rows (latest by event time) held out")
    fit.add_argument("--calibration", choices=["none", "platt", "isotonic"], default="none")
    fit.add_argument("--threshold", type=float, default=None, help="decision threshold (default: chosen)")
    fit.add_argument("--cost-fp", type=float, default=None, help="cost of a false positive (with --cost-fn)")
    fit.add_argument("--cost-fn", type=float, default=None, help="cost of a false negative (with --cost-fp)")
    fit.add_argument(
        "--registry", type=Path, default=None, help="register the artifact as the next version of this registry"
    )
    fit.add_argument("--promote", action="store_true", help="with --registry: make the new version CURRENT")
    fit.set_defaults(handler=_train)

    scoring = commands.add_parser(
        "score",
        parents=[common],
        help="score a dataset file with a model artifact (batch scoring)",
        description="Score every row of a dataset with the worker's vectorized code path and write what the "
        "prediction topic carries (probability, decision, threshold, model name and version, reason codes) as "
        "CSV or Avro. The file holds the model's input columns (see `model show`).",
    )
    scoring.add_argument("--data", type=Path, required=True)
    scoring.add_argument("--format", default="auto", choices=["auto", "csv", "avro", "parquet"])
    scoring.add_argument("--model", type=Path, default=None, help="artifact or registry (default: settings model_path)")
    scoring.add_argument("--out", type=Path, required=True, help="output file: .csv or .avro")
    scoring.add_argument("--id-column", default="event_id", help="copied to the output when present")
    scoring.set_defaults(handler=_score)


class Progress:
    """Stage lines on stderr with the time since the previous one."""

    def __init__(self) -> None:
        self._started = self._last = time.monotonic()

    def __call__(self, stage: str) -> None:
        now = time.monotonic()
        print(f"[{now - self._started:7.1f}s] {stage}", file=sys.stderr, flush=True)
        self._last = now


def class_weight(text: str | None) -> Any:
    """``balanced``, or ``0:1,1:20`` as {0: 1.0, 1: 20.0}."""
    if text is None or text == "balanced":
        return text
    try:
        return {int(k): float(v) for k, v in (item.split(":") for item in text.split(","))}
    except ValueError as exc:
        raise ConfigError(f'--class-weight must be "balanced" or like "0:1,1:20", not {text!r}') from exc


def _read(args: argparse.Namespace, settings: Settings) -> Table:
    """The dataset, with its event fields read as the configured event schema types them (when one is)."""
    table = read_table(args.data, args.format)
    if settings.events.schema is None:
        return table
    return with_event_fields(table, wiring.event_contract(settings, wiring.schemas(settings)).fields)


def _servable(model: LogisticModel, settings: Settings) -> None:
    """Refuse, before it is written, a model the worker would refuse: inputs the configured events and groups
    do not provide, or categories an event field can never hold."""
    if settings.events.schema is None:
        return
    fields = wiring.event_contract(settings, wiring.schemas(settings)).fields
    try:
        plan_inputs(model.serving_spec.input_columns.items(), settings.feature_groups, fields)
        check_categories(model.serving_spec, fields)
    except ModelArtifactError as exc:
        raise TrainingError(f"the worker would refuse this model: {exc}") from exc


def _time_column(settings: Settings) -> str:
    """The dataset column of the event time: ``event.<time_field>`` when events are configured."""
    events = settings.events
    return f"event.{events.time_field}" if events.schema is not None and events.time_field else "event_time"


def _train(args: argparse.Namespace, settings: Settings) -> int:
    if args.promote and args.registry is None:
        raise ConfigError("--promote needs --registry")
    progress = Progress()
    progress(f"read {args.data}")
    table = _read(args, settings)
    spec = load_spec(args.spec) if args.spec is not None else None
    options = train.TrainOptions(
        label=args.label or (spec.label if spec and spec.label else "label"),
        time_column=args.time_column or (spec.time_column if spec and spec.time_column else _time_column(settings)),
        C=args.C,
        penalty=args.penalty,
        l1_ratio=args.l1_ratio,
        class_weight=class_weight(args.class_weight),
        holdout=args.holdout,
        calibration=args.calibration,
        threshold=args.threshold,
        cost_fp=args.cost_fp,
        cost_fn=args.cost_fn,
    )
    progress(f"{table.rows} rows, {len(table.columns)} columns")
    if args.multinomial:
        return _train_multinomial(args, table, spec, options, progress)
    models: list[LogisticModel] = []

    def fit(version: str) -> LogisticModel:
        model = train.train(table, name=args.name, version=version, spec=spec, options=options, progress=progress)
        _servable(model, settings)
        return model

    if args.registry is not None:  # the registry numbers versions: the manifest carries that number
        registry = Registry.create(args.registry, verify=wiring.model_loader(settings))

        def write(directory: Path, version: int) -> None:
            models.append(fit(str(version)))
            artifact.save(models[0], directory)

        number = registry.register(write)
        out = registry.path(number)
        if args.promote:
            registry.promote(number)
    else:
        models.append(fit(args.version or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())))
        out = args.out or settings.model_path
        artifact.save(models[0], out)
    model = models[0]
    progress(f"wrote {out}")
    print(train.feature_table(model.feature_names, model))
    print()
    print(format_report(model.metrics["validation"]))
    summary = {"artifact": str(out), "version": model.version, "sha256": (out / "CHECKSUM").read_text().strip()}
    print(json.dumps({**summary, "threshold": model.threshold, "calibration": model.calibration.method}, indent=2))
    return 0


def _train_multinomial(
    args: argparse.Namespace, table: Table, spec: FeatureSpec | None, options: train.TrainOptions, progress: Progress
) -> int:
    if args.penalty != "l2" or args.calibration != "none" or args.class_weight or args.registry or args.cost_fp:
        raise ConfigError(
            "--multinomial supports the l2 penalty only, without calibration, class weights, costs or registry"
        )
    model = multinomial.train_multinomial(
        table,
        name=args.name,
        version=args.version or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        spec=spec,
        label=options.label,
        time_column=options.time_column,
        C=options.C,
        holdout=options.holdout,
        progress=progress,
    )
    out = args.out
    if out is None:
        raise ConfigError("--multinomial needs --out DIR")
    checksum = served_multinomial.save_multinomial(model, out)
    progress(f"wrote {out}")
    print(
        json.dumps(
            {"artifact": str(out), "sha256": checksum, "classes": list(model.classes), **model.metrics}, indent=2
        )
    )
    return 0


def _score(args: argparse.Namespace, settings: Settings) -> int:
    progress = Progress()
    configured = settings if args.model is None else _with_model(settings, args.model)
    path, _, _ = wiring.served_model_path(configured)
    if artifact.kind_of(path) == artifact.MULTINOMIAL:
        return _score_classes(args, settings, wiring.multinomial_loader(configured)(path), progress)
    model = wiring.model_loader(configured)(path)
    progress(f"model {model.name} {model.version} from {path}; read {args.data}")
    table = _read(args, settings)
    inputs = input_columns(table, list(model.serving_spec.input_columns))
    ids = table.columns.get(args.id_column)
    records: list[dict[str, Any]] = []
    for start in range(0, table.rows, SCORE_CHUNK):  # the worker's path: spec transform, one product, reasons
        rows = slice(start, min(start + SCORE_CHUNK, table.rows))
        scores, index, value = score_columns(
            model, {c: values[rows] for c, values in inputs.items()}, settings.reason_codes
        )
        for i, p in enumerate(scores.tolist()):
            row = start + i
            records.append(
                {
                    "event_id": str(ids[row]) if ids is not None else str(row),
                    "model_name": model.name,
                    "model_version": model.version,
                    "score": p,
                    "threshold": model.threshold,
                    "decision": p >= model.threshold,
                    "reasons": [
                        {"feature": model.feature_names[f], "contribution": v}
                        for f, v in zip(index[i].tolist(), value[i].tolist(), strict=True)
                    ],
                }
            )
        progress(f"scored {rows.stop}/{table.rows} rows")
    _write_scores(args.out, records, settings)
    progress(f"wrote {len(records)} scores to {args.out}")
    return 0


def _score_classes(
    args: argparse.Namespace, settings: Settings, model: served_multinomial.MultinomialModel, progress: Progress
) -> int:
    """Batch scoring of a multinomial model: the probability of every class and the most probable one."""
    progress(f"multinomial model {model.name} {model.version} ({len(model.classes)} classes); read {args.data}")
    table = _read(args, settings)
    spec = model.serving_spec
    inputs = input_columns(table, list(spec.input_columns))
    ids = table.columns.get(args.id_column)
    if args.out.suffix != ".csv":
        raise ConfigError("multinomial scores are written as CSV (--out FILE.csv)")
    with args.out.open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(
            ["event_id", "model_name", "model_version", "predicted_class", *(f"p_{c}" for c in model.classes)]
        )
        for start in range(0, table.rows, SCORE_CHUNK):
            rows = slice(start, min(start + SCORE_CHUNK, table.rows))
            matrix = transform(spec, {c: values[rows] for c, values in inputs.items()})
            probabilities = served_multinomial.score_classes(model, matrix)
            for i, (p, best) in enumerate(
                zip(probabilities.tolist(), probabilities.argmax(axis=1).tolist(), strict=True)
            ):
                event_id = str(ids[start + i]) if ids is not None else str(start + i)
                writer.writerow([event_id, model.name, model.version, model.classes[best], *p])
            progress(f"scored {rows.stop}/{table.rows} rows")
    return 0


def _with_model(settings: Settings, path: Path) -> Settings:
    return dataclasses.replace(settings, model_path=path)


def _write_scores(out: Path, records: list[dict[str, Any]], settings: Settings) -> None:
    if out.suffix == ".avro":
        schema = fastavro.parse_schema(json.loads((settings.schemas_dir / "score.avsc").read_text()))
        with out.open("wb") as file:
            fastavro.writer(file, schema, records)
        return
    if out.suffix != ".csv":
        raise ConfigError(f"--out must end in .csv or .avro, not {out.name}")
    with out.open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["event_id", "model_name", "model_version", "score", "threshold", "decision", "reasons"])
        for r in records:
            reasons = ";".join(f"{x['feature']}={x['contribution']:.6g}" for x in r["reasons"])
            writer.writerow(
                [
                    r["event_id"],
                    r["model_name"],
                    r["model_version"],
                    r["score"],
                    r["threshold"],
                    int(r["decision"]),
                    reasons,
                ]
            )
