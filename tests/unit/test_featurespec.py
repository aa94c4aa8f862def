"""The feature spec: parsed strictly, fitted once, and transformed alike before and after a manifest round trip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from stream_scorer.errors import ModelArtifactError, TrainingError
from stream_scorer.training.featurespec import (
    FeatureSpec,
    FittedHashed,
    FittedNumeric,
    FittedOneHot,
    FittedSpec,
    HashedFeature,
    NumericFeature,
    OneHotFeature,
    default_spec,
    fit_spec,
    fitted_from_dict,
    transform,
)
from stream_scorer.training.specfile import load_spec

SPEC = """
label = "label"
time_column = "event_time"
[[numeric]]
column = "event.amount_log"
impute = "median"
[[numeric]]
column = "card_velocity.txn_count_1h"
impute = 0
standardize = false
[[onehot]]
column = "event.channel"
categories = ["ECOM", "POS", "ATM"]
[[onehot]]
column = "event.merchant_category_code"
max_categories = 2
[[hashed]]
column = "event.merchant_id"
buckets = 16
"""


def training_columns() -> dict[str, np.ndarray]:
    return {
        "event.amount_log": np.array([1.0, 2.0, np.nan, 4.0, 5.0]),
        "card_velocity.txn_count_1h": np.array([3.0, np.nan, 1.0, 0.0, 2.0]),
        "event.channel": np.array(["POS", "ECOM", "ATM", "", "MOTO"], dtype=object),
        "event.merchant_category_code": np.array([5411.0, 5411.0, 7995.0, 4829.0, 7995.0]),
        "event.merchant_id": np.array(["m-1", "m-2", "m-1", "", "m-3"], dtype=object),
    }


def fitted_example(tmp_path: Path) -> FittedSpec:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC, encoding="utf-8")
    return fit_spec(load_spec(path), training_columns())


def test_load_spec_reads_every_section(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC, encoding="utf-8")
    spec = load_spec(path)
    assert spec.label == "label" and spec.time_column == "event_time"
    assert spec.numeric == (
        NumericFeature("event.amount_log", "median", True),
        NumericFeature("card_velocity.txn_count_1h", 0, False),
    )
    assert spec.onehot == (
        OneHotFeature("event.channel", ("ECOM", "POS", "ATM")),
        OneHotFeature("event.merchant_category_code", None, 2),
    )
    assert spec.hashed == (HashedFeature("event.merchant_id", 16),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('lable = "y"\n[[numeric]]\ncolumn = "a"', r"unknown keys \['lable'\] in the top level"),
        ('[[numeric]]\ncolumn = "a"\nimpute = "mode"', "impute must be mean, median, zero or a finite number"),
        ('[[numeric]]\ncolumn = "a"\nimpute = true', "impute must be"),
        ('[[numeric]]\ncolumn = "a"\nstandardise = true', r"unknown keys \['standardise'\] in \[\[numeric\]\] a"),
        ('[[numeric]]\ncolumn = "a"\n[[hashed]]\ncolumn = "a"\nbuckets = 4', r"more than once: \['a'\]"),
        ('[[hashed]]\ncolumn = "m"\nbuckets = 0', "buckets must be an integer >= 1, not 0"),
        ('[[hashed]]\ncolumn = "m"', "needs buckets"),
        ('[[onehot]]\ncolumn = "c"\ncategories = ["a", "a"]', "without repeats"),
        ('[[onehot]]\ncolumn = "c"\ncategories = ["a", ""]', "empty string means missing"),
        ('[[onehot]]\ncolumn = "c"\ncategories = ["a"]\nmax_categories = 3', "either categories or max_categories"),
        ('[[onehot]]\ncolumn = "c"\nmax_categories = 0', "max_categories must be an integer >= 1"),
        ("[[numeric]]\nimpute = 1", "needs column"),
        ('[[cyclic]]\ncolumn = "t"\nperiod = "year"', "period is day or week"),
        ('[[member]]\ncolumn = "c"\nvalues = []', "non-empty values"),
        ('[[member]]\ncolumn = "c"\nvalues = [[1]]', "values must be a list"),
        ('[[compare]]\nname = "x"\nleft = "a"\nright = "b"\nop = "like"', "op must be equal or differ"),
        ('[[compare]]\nleft = "a"\nright = "b"\nop = "equal"', "needs name"),
        ('[[numeric]]\ncolumn = "x"\nclip_min = "0"', "clip_min and clip_max must be numbers"),
        ('[[numeric]]\ncolumn = "x"\nclip_min = 2\nclip_max = 1', "clip bounds"),
        ('numeric = "a"', "must be an array of tables"),
        ('label = "y"', "declares no feature"),
        ("[[numeric]\n", "not valid TOML"),
    ],
)
def test_load_spec_refuses_bad_specs_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TrainingError, match=message) as caught:
        load_spec(path)
    assert str(path) in str(caught.value)


def test_load_spec_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="does not exist"):
        load_spec(tmp_path / "nope.toml")


def test_fit_learns_impute_values_scales_and_categories(tmp_path: Path) -> None:
    fitted = fitted_example(tmp_path)
    amount, count = fitted.numeric
    assert amount.impute_value == 3.0  # median of 1, 2, 4, 5
    assert amount.mean == pytest.approx(3.0) and amount.scale == pytest.approx(np.std([1, 2, 3, 4, 5]))
    assert (count.impute_value, count.mean, count.scale) == (0.0, 0.0, 1.0)
    # MCC: the two most frequent codes (ties broken by value), named by their decimal strings.
    assert fitted.onehot[1].categories == ("5411", "7995")
    assert fitted.feature_names[:7] == (
        "event.amount_log",
        "card_velocity.txn_count_1h",
        "event.channel=ECOM",
        "event.channel=POS",
        "event.channel=ATM",
        "event.merchant_category_code=5411",
        "event.merchant_category_code=7995",
    )
    assert fitted.feature_names[7:] == tuple(f"event.merchant_id#{b:02d}" for b in range(16))
    assert fitted.input_columns == {
        "event.amount_log": "numeric",
        "card_velocity.txn_count_1h": "numeric",
        "event.channel": "string",
        "event.merchant_category_code": "string",
        "event.merchant_id": "string",
    }
    k = fitted.n_features
    assert k == len(fitted.feature_names) == 23
    np.testing.assert_array_equal(fitted.means(), [3.0, 0.0] + [0.0] * (k - 2))
    np.testing.assert_array_equal(fitted.scales()[1:], np.ones(k - 1))
    np.testing.assert_array_equal(fitted.impute_values(), [3.0, 0.0] + [0.0] * (k - 2))


def test_transform_imputes_encodes_and_ignores_unknown_categories(tmp_path: Path) -> None:
    fitted = fitted_example(tmp_path)
    serving: dict[str, Any] = {
        "event.amount_log": np.array([np.nan, 7.0]),
        "card_velocity.txn_count_1h": np.array([np.nan, 2.0]),
        "event.channel": np.array(["ATM", "CRYPTO"]),  # CRYPTO: never seen, all zeros
        "event.merchant_category_code": np.array([7995, 1234], dtype=np.int32),  # serving sends ints
        "event.merchant_id": ["m-2", ""],  # "" is missing: all zeros
    }
    x = transform(fitted, serving)
    assert x.shape == (2, 23) and x.dtype == np.float64
    np.testing.assert_array_equal(x[:, :7], [[3.0, 0.0, 0, 0, 1, 0, 1], [7.0, 2.0, 0, 0, 0, 0, 0]])
    assert x[0, 7:].sum() == 1.0 and x[1, 7:].sum() == 0.0
    assert serving["event.amount_log"][0] != serving["event.amount_log"][0]  # input not mutated (still NaN)


def test_transform_is_the_same_after_a_manifest_round_trip(tmp_path: Path) -> None:
    fitted = fitted_example(tmp_path)
    restored = fitted_from_dict(orjson.loads(orjson.dumps(fitted.to_dict())))
    assert restored == fitted
    np.testing.assert_array_equal(transform(restored, training_columns()), transform(fitted, training_columns()))


def test_batch_transform_equals_row_by_row(tmp_path: Path) -> None:
    fitted = fitted_example(tmp_path)
    columns = training_columns()
    whole = transform(fitted, columns)
    for i in range(len(whole)):
        row = transform(fitted, {name: values[i : i + 1] for name, values in columns.items()})
        np.testing.assert_array_equal(row[0], whole[i])


def test_hash_bucket_is_crc32_by_hand() -> None:
    # CRC-32 of "123456789" is the published check value 0xCBF43926; its low 5 bits, 0x26 & 0x1F, are 6.
    fitted = FittedSpec(hashed=(FittedHashed("m", 32),))
    x = transform(fitted, {"m": ["123456789"]})
    assert fitted.feature_names[6] == "m#06" and np.flatnonzero(x[0]).tolist() == [6]


def test_hash_bucket_is_stable_across_processes_with_different_hash_seeds() -> None:
    script = (
        "from stream_scorer.training.featurespec import FittedHashed, FittedSpec, transform\n"
        "x = transform(FittedSpec(hashed=(FittedHashed('m', 64),)), {'m': ['m-000042', 'merchant-7']})\n"
        "print(x.argmax(axis=1).tolist())\n"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert outputs == {"[50, 30]\n"}  # zlib.crc32: 0x82403232 % 64 == 50, 0xD52F8F5E % 64 == 30


def test_default_spec_reproduces_mean_imputation_and_standardization() -> None:
    x = np.array([[1.0, 10.0], [3.0, 10.0], [np.nan, 10.0]])
    fitted = fit_spec(default_spec(["a", "b"]), {"a": x[:, 0], "b": x[:, 1]})
    assert fitted.feature_names == ("a", "b")
    np.testing.assert_allclose(fitted.means(), [2.0, 10.0])
    np.testing.assert_allclose(fitted.scales(), [float(np.std([1.0, 3.0, 2.0])), 1.0])  # std 0 -> scale 1
    np.testing.assert_array_equal(transform(fitted, {"a": x[:, 0], "b": x[:, 1]})[:, 0], [1.0, 3.0, 2.0])


def test_fit_refuses_missing_columns_and_wrong_kinds() -> None:
    with pytest.raises(TrainingError, match=r"lacks the feature spec's columns \['a'\]"):
        fit_spec(default_spec(["a"]), {"b": np.zeros(2)})
    with pytest.raises(TrainingError, match="holds strings; declare it"):
        fit_spec(default_spec(["a"]), {"a": np.array(["x", "y"], dtype=object)})
    with pytest.raises(TrainingError, match="no value to take the mean of"):
        fit_spec(default_spec(["a"]), {"a": np.array([np.nan, np.nan])})
    with pytest.raises(TrainingError, match="infinite"):
        fit_spec(default_spec(["a"]), {"a": np.array([1.0, np.inf])})
    with pytest.raises(TrainingError, match="fractional numbers"):
        fit_spec(FeatureSpec(hashed=(HashedFeature("a", 4),)), {"a": np.array([1.5, 2.0])})
    with pytest.raises(TrainingError, match="no non-empty value"):
        fit_spec(FeatureSpec(onehot=(OneHotFeature("c"),)), {"c": np.array(["", ""], dtype=object)})


def test_transform_refuses_missing_ragged_and_mistyped_columns() -> None:
    fitted = FittedSpec(numeric=(FittedNumeric("a", 0.0, 0.0, 1.0),), hashed=(FittedHashed("m", 4),))
    with pytest.raises(ModelArtifactError, match=r"input lacks: \['m'\]"):
        transform(fitted, {"a": np.zeros(2)})
    with pytest.raises(ModelArtifactError, match="differ in length"):
        transform(fitted, {"a": np.zeros(2), "m": ["x"]})
    with pytest.raises(ModelArtifactError, match="not numbers"):
        transform(fitted, {"a": np.array(["1", "2"]), "m": ["x", "y"]})
    with pytest.raises(ModelArtifactError, match="must hold strings"):
        transform(fitted, {"a": np.zeros(2), "m": ["x", 5]})


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d.update(format=3),
        lambda d: d["numeric"][0].update(derive={"operation": "cube", "inputs": ["x"]}),
        lambda d: d["numeric"][0].update(derive={"operation": "sin", "inputs": ["x"], "period": "year"}),
        lambda d: d["numeric"][0].update(derive={"operation": "member", "inputs": ["x"]}),
        lambda d: d["numeric"][0].update(derive={"operation": "differ", "inputs": ["x"]}),
        lambda d: d["numeric"][0].pop("scale"),
        lambda d: d["numeric"][0].update(scale=0.0),
        lambda d: d["numeric"][0].update(mean="1"),
        lambda d: d["onehot"][0].update(categories=[]),
        lambda d: d["onehot"][0].update(categories=[1]),
        lambda d: d["hashed"][0].update(hash="md5"),
        lambda d: d["hashed"][0].update(buckets=0),
        lambda d: d.update(hashed="x"),
    ],
)
def test_fitted_from_dict_refuses_mangled_manifests(mangle: object, tmp_path: Path) -> None:
    d = orjson.loads(orjson.dumps(fitted_example(tmp_path).to_dict()))
    mangle(d)  # type: ignore[operator]
    with pytest.raises(ModelArtifactError, match="feature spec"):
        fitted_from_dict(d)


def test_fitted_spec_refuses_colliding_feature_names() -> None:
    with pytest.raises(ModelArtifactError, match="repeat"):
        FittedSpec(numeric=(FittedNumeric("c=a", 0.0, 0.0, 1.0),), onehot=(FittedOneHot("c", ("a",)),))


DERIVED = """
[[numeric]]
name = "price_log"
column = "price"
clip_min = 0
clip_max = 100
log1p = true
[[cyclic]]
column = "ts"
period = "week"
[[member]]
name = "risky"
column = "code"
values = [7995, "4829", true]
[[compare]]
name = "abroad"
left = "country"
right = "home"
op = "differ"
[[missing]]
column = "referrer"
"""


def derived_columns() -> dict[str, Any]:
    monday = 4 * 86_400_000  # 1970-01-05, a Monday
    return {
        "price": np.array([-5.0, 0.0, 9.0, 1e9, np.nan]),
        "ts": np.array([monday, monday + 6 * 3_600_000, monday + 3.5 * 86_400_000, 0.0, np.nan]),
        "code": np.array([7995.0, 4829.0, 1.0, 5411.0, np.nan]),
        "country": np.array(["FR", "US", "", "DE", "US"], dtype=object),
        "home": np.array(["US", "US", "", "DE", ""], dtype=object),
        "referrer": np.array(["a", "", "b", "", "c"], dtype=object),
    }


def test_derived_features_compute_what_they_declare(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(DERIVED)
    spec = load_spec(path)
    assert spec.columns == ("price", "ts", "code", "country", "home", "referrer")
    columns = derived_columns()
    fitted = fit_spec(spec, columns)
    assert fitted.feature_names == ("price_log", "ts.week_sin", "ts.week_cos", "risky", "abroad", "referrer.missing")
    matrix = transform(fitted, columns)
    price = np.log1p(np.clip([-5.0, 0.0, 9.0, 1e9], 0, 100))
    np.testing.assert_allclose(matrix[:4, 0], price)
    assert matrix[4, 0] == fitted.numeric[0].impute_value  # NaN stays missing, then imputed
    np.testing.assert_allclose(
        matrix[:4, 1], [0.0, np.sin(2 * np.pi / 28), np.sin(np.pi), np.sin(2 * np.pi * 3 / 7)], atol=1e-12
    )
    np.testing.assert_allclose(matrix[:3, 2], [1.0, np.cos(2 * np.pi / 28), -1.0], atol=1e-12)
    assert matrix[:, 3].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]  # 1.0 is the category "1", as true is
    assert matrix[:, 4].tolist() == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert matrix[:, 5].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]


def test_derived_features_survive_the_manifest_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "spec.toml"
    path.write_text(DERIVED)
    fitted = fit_spec(load_spec(path), derived_columns())
    again = fitted_from_dict(orjson.loads(orjson.dumps(fitted.to_dict())))
    assert again == fitted
    np.testing.assert_array_equal(transform(again, derived_columns()), transform(fitted, derived_columns()))


def test_format_1_manifests_still_read() -> None:
    d = {
        "format": 1,
        "numeric": [{"column": "g.x", "impute_value": 0.0, "mean": 0.0, "scale": 1.0}],
        "onehot": [],
        "hashed": [],
    }
    assert fitted_from_dict(d).feature_names == ("g.x",)
