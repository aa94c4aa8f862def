"""Dataset files: CSV and Avro become typed columns; every bad file is refused with a message that says why."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest

from stream_scorer.errors import TrainingError
from stream_scorer.training.dataset import Table, class_labels_from, labels_from, read_table


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_avro(path: Path, fields: list[dict[str, Any]], records: list[dict[str, Any]]) -> Path:
    schema = fastavro.parse_schema({"type": "record", "name": "Row", "namespace": "test", "fields": fields})
    with path.open("wb") as out:
        fastavro.writer(out, schema, records)
    return path


def test_csv_columns_are_numeric_or_string_with_nan_and_empty_for_missing(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "event.amount_log,event.channel,label\n1.5,ECOM,1\n,POS,0\n-2e3,,1\n")
    table = read_table(path)
    assert table.rows == 3 and table.source == str(path)
    assert table.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_array_equal(table.columns["event.amount_log"], [1.5, np.nan, -2000.0])
    assert table.columns["event.channel"].tolist() == ["ECOM", "POS", ""]
    assert table.kind("event.amount_log") == "numeric" and table.kind("event.channel") == "string"
    assert table.columns["label"].dtype == np.float64


def test_csv_quirks_bom_quotes_blank_lines_and_all_empty_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes('\ufeffa,b,c\n"1","x, y",\n\n2,"line\nbreak",\n'.encode())
    table = read_table(path)
    assert list(table.columns) == ["a", "b", "c"] and table.rows == 2
    assert table.columns["b"].tolist() == ["x, y", "line\nbreak"]
    assert np.isnan(table.columns["c"]).all()  # empty throughout: numeric, all missing


def test_csv_with_na_text_is_a_string_column(tmp_path: Path) -> None:
    table = read_table(write(tmp_path / "d.csv", "a\n1\nNA\n"))
    assert table.kind("a") == "string" and table.columns["a"].tolist() == ["1", "NA"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("a,b\n", "is empty"),
        ("a,b\n1,2\n3\n", "line 3 has 1 values, the header 2"),
        ("a,a\n1,2\n", "distinct"),
    ],
)
def test_bad_csv_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        read_table(write(tmp_path / "d.csv", text))


def test_missing_non_utf8_and_unknown_suffix_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="does not exist"):
        read_table(tmp_path / "nope.csv")
    latin1 = tmp_path / "d.csv"
    latin1.write_bytes("a\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(TrainingError, match="not UTF-8"):
        read_table(latin1)
    with pytest.raises(TrainingError, match=r"cannot tell the format from '\.txt'"):
        read_table(write(tmp_path / "d.txt", "a\n1\n"))
    assert read_table(write(tmp_path / "d.txt", "a\n1\n"), fmt="csv").rows == 1


def test_avro_numbers_booleans_timestamps_enums_and_nullable_fields(tmp_path: Path) -> None:
    fields: list[dict[str, Any]] = [
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "amount", "type": "double"},
        {"name": "mcc", "type": "int"},
        {"name": "card_present", "type": "boolean"},
        {"name": "channel", "type": {"type": "enum", "name": "Channel", "symbols": ["POS", "ECOM"]}},
        {"name": "ip", "type": ["null", "string"], "default": None},
        {"name": "score", "type": ["null", "float"], "default": None},
    ]
    records = [
        {"event_time": 1_700_000_000_123, "amount": 9.5, "mcc": 5411, "card_present": True, "channel": "POS"},
        {"event_time": 1_700_000_000_456, "amount": 1.0, "mcc": 7995, "card_present": False, "channel": "ECOM",
         "ip": "10.0.0.1", "score": 0.5},
    ]  # fmt: skip
    table = read_table(write_avro(tmp_path / "d.avro", fields, records))
    assert table.rows == 2
    assert table.columns["event_time"].tolist() == [1_700_000_000_123.0, 1_700_000_000_456.0]
    assert table.columns["mcc"].tolist() == [5411.0, 7995.0]
    assert table.columns["card_present"].tolist() == [1.0, 0.0]
    assert table.columns["channel"].tolist() == ["POS", "ECOM"]
    assert table.columns["ip"].tolist() == ["", "10.0.0.1"]
    np.testing.assert_array_equal(table.columns["score"], [np.nan, 0.5])


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": {"type": "array", "items": "int"}}]},
        {"type": "array", "items": "int"},
        {"type": "map", "values": "string"},
        ["null", "int", "string"],
    ],
)
def test_avro_nested_fields_are_refused_by_name(tmp_path: Path, field_type: Any) -> None:
    path = write_avro(tmp_path / "d.avro", [{"name": "nested", "type": field_type}], [])
    with pytest.raises(TrainingError, match=r"field '(nested|x)'"):
        read_table(path)


def test_avro_nested_records_become_dotted_columns(tmp_path: Path) -> None:
    event = {
        "type": "record",
        "name": "Event",
        "fields": [{"name": "amount", "type": "double"}, {"name": "channel", "type": "string"}],
    }
    fields = [{"name": "event", "type": event}, {"name": "label", "type": "int"}]
    records = [
        {"event": {"amount": 1.5, "channel": "POS"}, "label": 0},
        {"event": {"amount": 2.0, "channel": "ATM"}, "label": 1},
    ]
    table = read_table(write_avro(tmp_path / "d.avro", fields, records))
    assert sorted(table.columns) == ["event.amount", "event.channel", "label"]
    assert table.columns["event.amount"].tolist() == [1.5, 2.0]
    assert table.columns["event.channel"].tolist() == ["POS", "ATM"]


def test_unreadable_and_empty_avro_files_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "g.avro"
    garbage.write_bytes(b"not avro at all")
    with pytest.raises(TrainingError, match="not a readable Avro container file"):
        read_table(garbage)
    good = write_avro(tmp_path / "d.avro", [{"name": "a", "type": "double"}], [{"a": float(i)} for i in range(50)])
    truncated = tmp_path / "t.avro"
    truncated.write_bytes(good.read_bytes()[:-20])
    with pytest.raises(TrainingError, match="not a readable Avro container file"):
        read_table(truncated)
    with pytest.raises(TrainingError, match="is empty"):
        read_table(write_avro(tmp_path / "e.avro", [{"name": "a", "type": "double"}], []))


def test_parquet_without_pyarrow_says_which_extra_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail, whether or not pyarrow is installed.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    path = tmp_path / "d.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(TrainingError, match=r"install stream-scorer\[parquet\]"):
        read_table(path)


def test_parquet_round_trip_when_pyarrow_is_installed(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    data = {
        "amount": [1.5, None],
        "mcc": [5411, 7995],
        "flag": [True, None],
        "channel": ["POS", None],
        "event": [{"total": 1.0, "buyer": {"tier": "GOLD"}}, {"total": None, "buyer": {"tier": None}}],
    }
    data["at"] = pa.array([1_700_000_000_123_456, None], type=pa.timestamp("us"))  # micros: floored to ms
    pq.write_table(pa.table(data), tmp_path / "d.parquet")
    table = read_table(tmp_path / "d.parquet")
    np.testing.assert_array_equal(table.columns["at"], [1_700_000_000_123.0, np.nan])
    np.testing.assert_array_equal(table.columns["event.total"], [1.0, np.nan])  # nested records: dotted paths
    assert table.columns["event.buyer.tier"].tolist() == ["GOLD", ""]
    np.testing.assert_array_equal(table.columns["amount"], [1.5, np.nan])
    np.testing.assert_array_equal(table.columns["flag"], [1.0, np.nan])
    assert table.columns["mcc"].tolist() == [5411.0, 7995.0]
    assert table.columns["channel"].tolist() == ["POS", ""]


def table_of(**columns: np.ndarray) -> Table:
    return Table(dict(columns), rows=len(next(iter(columns.values()))), fingerprint="", source="t")


def test_labels_are_checked_for_presence_nan_and_values() -> None:
    assert labels_from(table_of(y=np.array([1.0, 0.0])), "y").tolist() == [1.0, 0.0]
    with pytest.raises(TrainingError, match=r"no label column 'label'; columns: \['y'\]"):
        labels_from(table_of(y=np.array([1.0])), "label")
    with pytest.raises(TrainingError, match="2 labels in 'y' are missing"):
        labels_from(table_of(y=np.array([1.0, np.nan, np.nan])), "y")
    with pytest.raises(TrainingError, match=r"must be 0 or 1; found also \[2.0\]"):
        labels_from(table_of(y=np.array([1.0, 2.0, 0.0])), "y")
    with pytest.raises(TrainingError, match="holds strings"):
        labels_from(table_of(y=np.array(["yes", "no"], dtype=object)), "y")


def test_class_labels_sort_numbers_as_numbers_and_refuse_missing() -> None:
    classes, codes = class_labels_from(table_of(y=np.array([10.0, 2.0, 10.0])), "y")
    assert classes == ("2", "10") and codes.tolist() == [1, 0, 1] and codes.dtype == np.int64
    classes, codes = class_labels_from(table_of(y=np.array(["fraud", "ok", "ok"], dtype=object)), "y")
    assert classes == ("fraud", "ok") and codes.tolist() == [0, 1, 1]
    with pytest.raises(TrainingError, match="1 labels in 'y' are missing"):
        class_labels_from(table_of(y=np.array(["ok", ""], dtype=object)), "y")
    with pytest.raises(TrainingError, match="1 labels in 'y' are missing"):
        class_labels_from(table_of(y=np.array([1.0, np.nan])), "y")


def test_avro_named_type_references_and_uuids_read_as_the_types_they_name(tmp_path: Path) -> None:
    tier = {"type": "enum", "name": "Tier", "symbols": ["BASIC", "GOLD"]}
    fields = [
        {"name": "event", "type": {"type": "record", "name": "E", "fields": [{"name": "tier", "type": tier}]}},
        {"name": "previous", "type": ["null", "Tier"]},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "label", "type": "int"},
    ]
    records = [
        {"event": {"tier": "GOLD"}, "previous": None, "id": "0b7e3a4e-1f0c-4c7a-9a57-6d1d1f5c8a11", "label": 1},
        {"event": {"tier": "BASIC"}, "previous": "GOLD", "id": "5f2a6b1c-0d9e-4e3f-8a7b-2c1d0e9f8a7b", "label": 0},
    ]
    table = read_table(write_avro(tmp_path / "d.avro", fields, records))
    assert table.columns["event.tier"].tolist() == ["GOLD", "BASIC"]
    assert table.columns["previous"].tolist() == ["", "GOLD"]
    assert table.columns["id"].tolist()[1].startswith("5f2a")


def test_a_string_field_that_looks_numeric_keeps_its_text(tmp_path: Path) -> None:
    from stream_scorer.events.schema import FieldType
    from stream_scorer.training.dataset import with_event_fields

    table = read_table(write(tmp_path / "d.csv", "event.zip,event.count,label\n02134,7,1\n,8,0\n"))
    assert table.columns["event.zip"].tolist()[0] == 2134.0  # a CSV alone cannot tell
    typed = with_event_fields(table, {"zip": FieldType("string", "string"), "count": FieldType("int", "int")})
    assert typed.columns["event.zip"].tolist() == ["02134", ""]  # the schema says it is text: as the worker reads it
    assert typed.columns["event.count"].tolist() == [7.0, 8.0]
