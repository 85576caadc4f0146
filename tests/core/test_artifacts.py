"""Typed, versioned artifacts: validation on load, one-line errors, the front-end hash check."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kwstool.core import artifacts, contract, records
from kwstool.core.artifacts import PreparedManifest, QuantizeReport, RunConfig
from kwstool.core.frontend import FEATURE_PARAMS
from kwstool.errors import KwsError

LABELS = ["_silence_", "_unknown_", "yes", "no"]


def report_body() -> dict[str, Any]:
    """A complete quantize.json body (no schema header), as `kwstool quantize` writes it."""
    tensor = {"shape": [1, 49, 40, 1], "dtype": "int8", "scale": 1.0, "zero_point": 0}
    return {
        "kwstool_version": "0.1.0",
        "model": "tiny_conv",
        "model_file": "model_int8.tflite",
        "model_bytes": 1234,
        "model_sha256": "0" * 64,
        "arena_bytes": 4096,
        "arena_measurement": {"method": "recording allocator", "verified_minimal": True},
        "ops": ["CONV_2D"],
        "op_resolver": ["AddConv2D"],
        "input": tensor,
        "output": {**tensor, "shape": [1, 4], "scale": 0.00390625, "zero_point": -128},
        "input_spans_int8": True,
        "labels": LABELS,
        "features": copy.deepcopy(FEATURE_PARAMS),
        "data_dir": "/data",
        "representative": {"split": "train", "count": 10, "seed": 0, "range_sample": "first clip"},
        "accuracy": {
            "float": {"validation": 0.9, "test": None},
            "int8": {"validation": 0.875, "test": None},
        },
        "tflm_matches_litert": True,
        "parity": {
            "clips": 10,
            "identical_clips": 10,
            "max_abs_diff": 0,
            "top1_agreement": 1.0,
            "litert_kernels": "reference",
            "tflite_micro_version": "0",
        },
    }


def manifest_body() -> dict[str, Any]:
    return {
        "kwstool_version": "0.1.0",
        "source": "/audio",
        "source_kind": "folder",
        "words": ["yes", "no"],
        "labels": LABELS,
        "features": copy.deepcopy(FEATURE_PARAMS),
        "splits": {"train": {"count": 3, "per_class": {}}},
        "inputs_hash": "ab" * 32,
        "skipped": [],
        "warnings": [],
        "params": {"seed": 0},
        "split_rule": None,
        "clips_found": 3,
        "background_noise": [],
        "file_sizes": {"train_features.npy": 10},
    }


def write(path: Path, body: dict[str, Any], record: type[artifacts.Artifact]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**record.header(), **body}))
    return path


def test_quantize_report_round_trip(tmp_path):
    path = write(tmp_path / "quantize.json", report_body(), QuantizeReport)
    report = QuantizeReport.from_json(path)
    assert report.arena_bytes == 4096 and report.input.scale == 1.0
    assert report.parity.note is None and report.accuracy["float"]["test"] is None
    again = tmp_path / "again.json"
    report.to_json(again)
    assert json.loads(again.read_text()) == json.loads(path.read_text())
    assert list(report.to_dict())[:2] == ["schema", "version"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.pop("arena_bytes"), "field 'arena_bytes' missing; re-run `kwstool quantize`"),
        (
            lambda b: b.update(arena_bytes="4k"),
            "field 'arena_bytes' is a string, expected integer; re-run `kwstool quantize`",
        ),
        (
            lambda b: b.update(arena_bytes=True),
            "field 'arena_bytes' is true/false, expected integer; re-run `kwstool quantize`",
        ),
        (
            lambda b: b["input"].pop("scale"),
            "field 'input.scale' missing; re-run `kwstool quantize`",
        ),
        (
            lambda b: b.update(labels=["yes", 3]),
            "field 'labels' is a list, expected list of string; re-run `kwstool quantize`",
        ),
        (
            lambda b: b["parity"].update(note=7),
            "field 'parity.note' is an integer, expected string or null; re-run `kwstool quantize`",
        ),
    ],
)
def test_quantize_report_field_errors(tmp_path, change, message):
    body = report_body()
    change(body)
    path = write(tmp_path / "run" / "quantize.json", body, QuantizeReport)
    with pytest.raises(KwsError) as exc:
        QuantizeReport.from_json(path)
    assert str(exc.value) == f"{path}: {message}"


def test_schema_and_version_are_checked(tmp_path):
    path = tmp_path / "quantize.json"
    path.write_text(json.dumps({"format": 1, **report_body()}))
    with pytest.raises(
        KwsError,
        match=r"quantize.json: field 'schema' missing \(written by an "
        r"older kwstool\); re-run `kwstool quantize`$",
    ):
        QuantizeReport.from_json(path)
    path.write_text(json.dumps({**QuantizeReport.header(), "version": 99, **report_body()}))
    with pytest.raises(KwsError, match=r"version 99 is not 2 .*; re-run `kwstool quantize`$"):
        QuantizeReport.from_json(path)
    path.write_text(json.dumps({**RunConfig.header(), **report_body()}))
    with pytest.raises(
        KwsError,
        match=r"schema 'kwstool.run_config' is not "
        r"'kwstool.quantize_report'",
    ):
        QuantizeReport.from_json(path)
    path.write_text("[1, 2]")
    with pytest.raises(KwsError, match=r"holds a list, not a JSON object"):
        QuantizeReport.from_json(path)
    path.write_text("{")
    with pytest.raises(KwsError, match=r"unreadable JSON"):
        QuantizeReport.from_json(path)


def test_manifest_optional_sections_and_extra_keys(tmp_path):
    body = {**manifest_body(), "format": 2}
    path = write(tmp_path / "data" / "manifest.json", body, PreparedManifest)
    manifest = artifacts.load_manifest(tmp_path / "data")
    assert manifest.tfds is None and manifest.archive is None and manifest.split_rule is None
    assert manifest.extra == {"format": 2}
    assert manifest.to_dict() == json.loads(path.read_text())  # nothing dropped, nothing added
    body.pop("split_rule")  # required even though null is allowed
    write(path, body, PreparedManifest)
    with pytest.raises(
        KwsError,
        match=r"field 'split_rule' missing; re-run `kwstool prepare "
        r"--force`$",
    ):
        artifacts.load_manifest(tmp_path / "data")
    with pytest.raises(KwsError, match=r"empty: no manifest.json"):
        artifacts.load_manifest(tmp_path / "empty")


def test_changed_front_end_invalidates_caches_and_models(tmp_path, monkeypatch):
    """Changing the C front end's parameters invalidates caches with a clear message."""
    data = tmp_path / "data"
    write(data / "manifest.json", manifest_body(), PreparedManifest)
    report = write(tmp_path / "run" / "quantize.json", report_body(), QuantizeReport)
    artifacts.load_manifest(data)  # accepted as built
    old = contract.FRONTEND_HASH
    monkeypatch.setattr(contract, "FRONTEND_HASH", "f" * 64)  # as after a rebuilt front end
    with pytest.raises(KwsError) as exc:
        artifacts.load_manifest(data)
    assert str(exc.value) == (
        f"{data / 'manifest.json'}: features were computed by another C front end (hash "
        f"{old[:12]}, this kwstool ffffffffffff); re-run `kwstool prepare --force`"
    )
    with pytest.raises(
        KwsError,
        match=r"another C front end .*; re-run `kwstool prepare "
        r"--force`, then `kwstool train` and `kwstool quantize`$",
    ):
        QuantizeReport.from_json(report)


def test_features_without_hash_are_refused(tmp_path):
    body = manifest_body()
    del body["features"]["frontend_hash"]
    write(tmp_path / "manifest.json", body, PreparedManifest)
    with pytest.raises(
        KwsError,
        match=r"field 'features.frontend_hash' missing \(features from "
        r"an older kwstool\); re-run `kwstool prepare --force`$",
    ):
        artifacts.load_manifest(tmp_path)


def test_run_config_checks_label_count(tmp_path):
    body = {
        "kwstool_version": "0.1.0",
        "model": "tiny_conv",
        "hyperparameters": {},
        "seed": 0,
        "labels": LABELS,
        "num_labels": 3,
        "input_shape": [49, 40, 1],
        "params": 10,
        "features": copy.deepcopy(FEATURE_PARAMS),
        "data": {"path": "/d", "inputs_hash": None, "train_count": 1, "validation_count": 1},
        "augmentation": {},
        "optimizer": {},
    }
    with pytest.raises(
        KwsError,
        match=r"config.json: field 'num_labels' is 3 but 'labels' has 4;"
        r" re-run `kwstool train`$",
    ):
        RunConfig.stamp(body)
    body["num_labels"] = 4
    write(tmp_path / "config.json", body, RunConfig)
    config = artifacts.load_config(tmp_path)
    assert config.data.inputs_hash is None and config.labels == LABELS
    with pytest.raises(KwsError, match=r"config.json: not found; train a model"):
        artifacts.load_config(tmp_path / "nothing")


def test_report_must_describe_its_model(tmp_path):
    model = tmp_path / "model_int8.tflite"
    model.write_bytes(b"model")
    write(tmp_path / "quantize.json", report_body(), QuantizeReport)
    with pytest.raises(KwsError, match=r"describes a different model_int8.tflite"):
        artifacts.load_report(model)


def record_fields(record: type) -> set[str]:
    """Field names of a record and of the records nested in it."""
    import dataclasses
    import typing

    names = set()
    hints = typing.get_type_hints(record)
    for f in dataclasses.fields(record):
        if f.name == "extra":
            continue
        names.add(f.name)
        nested = records.record_type(hints[f.name])
        if nested is not None:
            names |= record_fields(nested)
    return names


@pytest.mark.parametrize("record", [PreparedManifest, RunConfig, QuantizeReport])
def test_every_field_is_documented(record):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md").read_text()
    assert f"schema `{record.SCHEMA}` v{record.VERSION}" in doc
    missing = sorted(n for n in record_fields(record) if f"`{n}`" not in doc)
    assert missing == [], f"document these {record.__name__} fields in docs/ARCHITECTURE.md"
